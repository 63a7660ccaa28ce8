//! Host-side tests of the agent against [`FakeKernel`]: each runs a plan
//! through `runner::run`, as the agent in the VM does, and looks at the
//! messages it sent and at what the fake kernel saw.

mod bpftool;
mod interface;
mod load;
mod module_btf;
mod tracing;
mod types;

use std::collections::BTreeMap;

use btfvm_btf::builder::Builder;
use btfvm_btf::{Btf, INT_SIGNED};
use btfvm_proto::{
    KernelConfig, Message, ModuleEntry, Observations, Outcome, Plan, PlannedScenario,
    PROTOCOL_VERSION,
};

use crate::agent::Agent;
use crate::fake::{FakeKernel, ModuleFile};

/// A small vmlinux: [1] int, [2] long int, [3] unsigned int, [4] char,
/// [5] char *, [6] struct list_head, [7] struct list_head *.
pub fn vmlinux() -> Vec<u8> {
    let mut b = Builder::new();
    b.int("int", 4, INT_SIGNED, 32);
    b.int("long int", 8, INT_SIGNED, 64);
    b.int("unsigned int", 4, 0, 32);
    let ch = b.int("char", 1, INT_SIGNED, 8);
    b.ptr(ch);
    let list_head = b.next_id();
    let ptr = list_head + 1;
    b.struct_("list_head", 16, &[("next", ptr, 0), ("prev", ptr, 64)]);
    b.ptr(list_head);
    b.build()
}

pub fn vmlinux_btf() -> Btf {
    Btf::parse(&vmlinux()).expect("fixture vmlinux parses")
}

/// A module's split BTF: `struct <name>_priv { int count; struct list_head
/// *list; }`, both members vmlinux types, and a pointer to the struct.
pub fn module_btf(name: &str) -> Vec<u8> {
    let mut b = Builder::split(&vmlinux_btf());
    let st = b.next_id();
    b.struct_(
        format!("{name}_priv").as_str(),
        16,
        &[("count", 1, 0), ("list", 7, 64)],
    );
    b.ptr(st);
    b.build()
}

/// The test module's BTF: `struct btfvm_test_point { int x; long int y;
/// unsigned int flags; }` on vmlinux's own types.
pub fn testmod_btf() -> Vec<u8> {
    let mut b = Builder::split(&vmlinux_btf());
    b.struct_(
        "btfvm_test_point",
        24,
        &[("x", 1, 0), ("y", 2, 64), ("flags", 3, 128)],
    );
    b.build()
}

/// Puts one misbehaviour into a fake kernel.
pub type Fault = fn(&mut FakeKernel);

/// Module paths in the fake initramfs.
pub fn path(key: &str) -> String {
    format!("/lib/modules/{key}.ko")
}

/// The modules of [`kernel`] and [`plan`]: (plan key, module name, deps as
/// the host writes them, leaves first, file).
fn modules() -> Vec<(&'static str, ModuleFile, Vec<&'static str>)> {
    let mut corrupt = module_btf("dummy");
    corrupt[0] ^= 0xff;
    vec![
        (
            "dummy",
            ModuleFile::new("dummy", Some(module_btf("dummy"))),
            vec![],
        ),
        ("dummy.no-btf", ModuleFile::new("dummy", None), vec![]),
        (
            "dummy.corrupt-btf",
            ModuleFile::new("dummy", Some(corrupt)),
            vec![],
        ),
        (
            "btfvm_test",
            ModuleFile::new("btfvm_test", Some(testmod_btf())).logs("btfvm_test: loaded, sum 21"),
            vec![],
        ),
        (
            "udp_tunnel",
            ModuleFile::new("udp_tunnel", Some(module_btf("udp_tunnel"))),
            vec![],
        ),
        (
            "ip6_udp_tunnel",
            ModuleFile::new("ip6_udp_tunnel", Some(module_btf("ip6_udp_tunnel")))
                .needs(&["udp_tunnel"]),
            vec!["udp_tunnel"],
        ),
        (
            "vxlan",
            ModuleFile::new("vxlan", Some(module_btf("vxlan")))
                .needs(&["udp_tunnel", "ip6_udp_tunnel"]),
            vec!["udp_tunnel", "ip6_udp_tunnel"],
        ),
    ]
}

/// A 6.1 kernel with the module files of [`plan`].
pub fn kernel() -> FakeKernel {
    with_files(FakeKernel::new(&vmlinux()))
}

pub fn with_files(mut k: FakeKernel) -> FakeKernel {
    for (key, file, _) in modules() {
        k.add_file(&path(key), file);
    }
    k
}

/// A plan with the fixture modules and these scenarios, each steps in the
/// plan's JSON.
pub fn plan(scenarios: &[(&str, &str)]) -> Plan {
    let modules: BTreeMap<String, ModuleEntry> = modules()
        .into_iter()
        .map(|(key, file, deps)| {
            let entry = ModuleEntry {
                btf_bytes: file.btf.as_ref().map(|b| b.len() as u64),
                btf_base_types: None,
                name: file.name,
                file: path(key),
                deps: deps.into_iter().map(String::from).collect(),
            };
            (key.to_string(), entry)
        })
        .collect();
    Plan {
        attempt: 0,
        protocol: PROTOCOL_VERSION,
        kernel: "fake".into(),
        config_path: "/config".into(),
        spec_config: BTreeMap::new(),
        modules,
        bpftool: None,
        shares: vec![],
        scenarios: scenarios
            .iter()
            .map(|(name, steps)| PlannedScenario {
                name: name.to_string(),
                steps: serde_json::from_str(steps)
                    .unwrap_or_else(|e| panic!("steps of {name}: {e}: {steps}")),
            })
            .collect(),
    }
}

pub const CONFIG_6_1: &str = "# Linux/x86 6.1.119 Kernel Configuration\nCONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_DEBUG_INFO_BTF_MODULES=y\n# CONFIG_MODULE_ALLOW_BTF_MISMATCH is not set\n";

/// What one boot sent, and the kernel after it.
pub struct Boot {
    pub messages: Vec<Message>,
    pub kernel: FakeKernel,
}

impl Boot {
    pub fn finished(&self, name: &str) -> (&Outcome, &Observations) {
        self.messages
            .iter()
            .find_map(|m| match m {
                Message::ScenarioFinished {
                    name: n,
                    outcome,
                    observations,
                    ..
                } if n == name => Some((outcome, observations)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no ScenarioFinished for {name}: {:?}", self.messages))
    }

    pub fn obs(&self, name: &str) -> &Observations {
        self.finished(name).1
    }

    #[track_caller]
    pub fn passed(&self, name: &str) {
        let (outcome, _) = self.finished(name);
        assert_eq!(outcome, &Outcome::Passed, "scenario {name}");
    }

    /// The failure message of a scenario that must have failed.
    #[track_caller]
    pub fn failure(&self, name: &str) -> &str {
        match self.finished(name).0 {
            Outcome::Failed { message } => message,
            o => panic!("scenario {name} should have failed: {o:?}"),
        }
    }

    #[track_caller]
    pub fn fails_with(&self, name: &str, text: &str) {
        let msg = self.failure(name);
        assert!(
            msg.contains(text),
            "scenario {name}: failure {msg:?} lacks {text:?}"
        );
    }
}

pub fn boot_with(kernel: FakeKernel, config: &str, plan: &Plan) -> Boot {
    let mut agent = Agent::new(plan, KernelConfig::parse(config), kernel);
    let mut messages = Vec::new();
    crate::runner::run(plan, &mut agent, &mut |m: &Message| {
        messages.push(m.clone())
    });
    Boot {
        messages,
        kernel: agent.kernel,
    }
}

/// Runs the scenarios on `kernel` with a 6.1 config.
pub fn boot(kernel: FakeKernel, scenarios: &[(&str, &str)]) -> Boot {
    boot_with(kernel, CONFIG_6_1, &plan(scenarios))
}

/// Runs one scenario "s" on `kernel` and gives its outcome.
pub fn one(kernel: FakeKernel, steps: &str) -> Boot {
    boot(kernel, &[("s", steps)])
}
