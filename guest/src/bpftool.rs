//! `expect_bpftool_btf_show`: the kernel's suite's own bpftool must list
//! the BTF objects the agent sees. bpftool 7.x prints kernel BTF as
//! `1: name [vmlinux]  size 4109490B` and user BTF as `name <anon>`; its
//! JSON has `"kernel": true|false` and no `"name"` for user BTF (measured
//! with bookworm's 7.1).

use btfvm_proto::{BtfObject, GuestProgram};
use serde_json::Value;

use crate::agent::{Agent, Scenario, R};
use crate::kernel::Kernel;

/// What a run of a program gave.
#[derive(Debug, Clone, Default)]
pub struct ProgramOutput {
    /// The exit status; None when a signal ended it.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn object_line(o: &BtfObject) -> String {
    if o.kernel_btf {
        format!("{}: name [{}]", o.id, o.name)
    } else {
        format!("{}: name <anon>", o.id)
    }
}

/// Compares bpftool's two listings with the agent's; notes on success.
pub fn compare(objs: &[BtfObject], json: &str, text: &str) -> Result<Vec<String>, String> {
    let listed: Value = serde_json::from_str(json)
        .map_err(|e| format!("`bpftool -j btf show` printed no JSON ({e}): {json:.200}"))?;
    let listed = listed
        .as_array()
        .ok_or_else(|| format!("`bpftool -j btf show` printed no array: {json:.200}"))?;
    let mut notes = Vec::new();
    for o in objs {
        let Some(entry) = listed
            .iter()
            .find(|e| e["id"].as_u64() == Some(u64::from(o.id)))
        else {
            return Err(format!(
                "`bpftool -j btf show` lists no BTF object {} ({:?}), which the agent sees",
                o.id, o.name
            ));
        };
        let name = entry["name"].as_str().unwrap_or("");
        let kernel = entry["kernel"].as_bool();
        let size = entry["size"].as_u64();
        if name != o.name || kernel != Some(o.kernel_btf) || size != Some(u64::from(o.btf_size)) {
            return Err(format!(
                "bpftool says BTF object {} is name {name:?}, kernel {kernel:?}, size {size:?}; \
                 the agent sees name {:?}, kernel_btf {}, btf_size {}",
                o.id, o.name, o.kernel_btf, o.btf_size
            ));
        }
        let want = object_line(o);
        let size_text = format!("size {}B", o.btf_size);
        if !text
            .lines()
            .any(|l| l.trim_start().starts_with(&want) && l.contains(&size_text))
        {
            return Err(format!(
                "`bpftool btf show` has no line `{want}  {size_text}`:\n{text:.2000}"
            ));
        }
        notes.push(format!("bpftool: {want}  {size_text}"));
    }
    let ours: Vec<u64> = objs.iter().map(|o| u64::from(o.id)).collect();
    if let Some(extra) = listed
        .iter()
        .filter_map(|e| e["id"].as_u64())
        .find(|id| !ours.contains(id))
    {
        return Err(format!(
            "`bpftool -j btf show` lists BTF object {extra}, which the agent does not see"
        ));
    }
    Ok(notes)
}

impl<K: Kernel> Agent<'_, K> {
    fn run_bpftool(&mut self, tool: &GuestProgram, args: &[&str]) -> Result<String, String> {
        let mut argv = vec![
            tool.loader.clone(),
            "--library-path".into(),
            tool.library_path.clone(),
            tool.binary.clone(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        let shown = format!("bpftool {}", args.join(" "));
        let out = self
            .kernel
            .run_program(&argv)
            .map_err(|e| format!("{shown} ({}): cannot run: {e}", tool.origin))?;
        if out.status != Some(0) {
            return Err(format!(
                "{shown} ({}) exited with {:?}: {}",
                tool.origin,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn expect_bpftool_btf_show(&mut self, sc: &mut Scenario<K>) -> R {
        let tool = self
            .plan
            .bpftool
            .clone()
            .ok_or("the plan has no bpftool (a host plan bug)")?;
        let objs = self.objects()?;
        let json = self.run_bpftool(&tool, &["-j", "btf", "show"])?;
        let text = self.run_bpftool(&tool, &["btf", "show"])?;
        let notes = compare(&objs, &json, &text)?;
        sc.obs.notes.push(format!("ran {}", tool.origin));
        sc.obs.notes.extend(notes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: u32, name: &str, kernel_btf: bool, btf_size: u32) -> BtfObject {
        BtfObject {
            id,
            name: name.into(),
            kernel_btf,
            btf_size,
        }
    }

    const JSON: &str = r#"[{"id":1,"size":4109490,"prog_ids":[],"map_ids":[],"kernel":true,"name":"vmlinux"},{"id":2,"size":453,"prog_ids":[],"map_ids":[],"kernel":true,"name":"dummy"},{"id":3,"size":60,"prog_ids":[],"map_ids":[],"kernel":false}]"#;
    const TEXT: &str =
        "1: name [vmlinux]  size 4109490B\n2: name [dummy]  size 453B\n3: name <anon>  size 60B\n";

    #[test]
    fn the_listings_agree_with_the_agent() {
        let objs = [
            obj(1, "vmlinux", true, 4109490),
            obj(2, "dummy", true, 453),
            obj(3, "", false, 60),
        ];
        let notes = compare(&objs, JSON, TEXT).unwrap();
        assert_eq!(notes[1], "bpftool: 2: name [dummy]  size 453B");
        // Each disagreement is named.
        let e = compare(
            &[
                obj(1, "vmlinux", true, 4109490),
                obj(2, "dummy", true, 454),
                obj(3, "", false, 60),
            ],
            JSON,
            TEXT,
        )
        .unwrap_err();
        assert!(
            e.contains(
                "bpftool says BTF object 2 is name \"dummy\", kernel Some(true), size Some(453)"
            ),
            "{e}"
        );
        let e = compare(
            &[obj(1, "vmlinux", true, 4109490), obj(3, "", false, 60)],
            JSON,
            TEXT,
        )
        .unwrap_err();
        assert!(
            e.contains("lists BTF object 2, which the agent does not see"),
            "{e}"
        );
        let e = compare(
            &[obj(1, "vmlinux", true, 4109490)],
            JSON,
            "1: name vmlinux size 4109490B\n",
        )
        .unwrap_err();
        assert!(
            e.contains("has no line `1: name [vmlinux]  size 4109490B`"),
            "{e}"
        );
        assert!(compare(&[], "not json", "")
            .unwrap_err()
            .contains("printed no JSON"));
    }
}
