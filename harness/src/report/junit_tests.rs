use super::*;
use crate::report::Summary;
use crate::run::outcome::FailureKind;
use crate::run::record::KernelRecord;

fn trial(kernel: &str, scenario: &str, outcome: TrialOutcome) -> TrialRecord {
    TrialRecord {
        name: format!("{kernel}::{scenario}"),
        kernel: kernel.into(),
        scenario: scenario.into(),
        outcome,
        duration_ms: 1500,
        observations: None,
    }
}

fn report() -> Report {
    let mut k = KernelRecord::named("built-6.1@debian-sid");
    k.release = Some("6.1.176".into());
    k.pahole_version = Some("132".into());
    k.config_sha256 = Some("0123456789abcdef0123".into());
    let trials = vec![
        trial("built-6.1@debian-sid", "a", TrialOutcome::Passed),
        trial(
            "built-6.1@debian-sid",
            "b",
            TrialOutcome::failed(FailureKind::Check, "no BTF object named \"dummy\"\nmore"),
        ),
        trial(
            "built-6.1@debian-sid",
            "c",
            TrialOutcome::Ignored {
                reason: "feature absent: x".into(),
            },
        ),
        trial(
            "built-6.1@debian-sid",
            "d",
            TrialOutcome::Flaky {
                message: "boot timed out".into(),
                attempts: 2,
            },
        ),
        trial(
            "never",
            "a",
            TrialOutcome::failed(FailureKind::Environment, "no QEMU"),
        ),
    ];
    Report {
        schema: crate::report::SCHEMA,
        btfvm: "t".into(),
        accel: None,
        kernels: vec![k],
        summary: Summary::of(&trials),
        trials,
    }
}

#[test]
fn a_suite_per_kernel_a_case_per_trial_and_the_build_in_the_classname() {
    let r = report();
    let j = junit(&r);
    assert_eq!(j.test_suites.len(), 2);
    let xml = j.to_string().unwrap();
    assert_eq!(xml.matches("<testcase ").count(), r.trials.len(), "{xml}");
    assert!(
        xml.contains(
            "classname=\"btfvm.built-6_1_debian-sid.6_1_176_pahole-132_config-0123456789ab\""
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"no BTF object named &quot;dummy&quot;\" type=\"check\">"),
        "{xml}"
    );
    assert!(
        xml.contains("<skipped message=\"feature absent: x\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("<flakyFailure message=\"boot timed out\" type=\"flaky\">"),
        "{xml}"
    );
    assert!(xml.contains("time=\"1.500\""), "{xml}");
    let valid = to_xml(&r).unwrap();
    assert!(
        valid.contains("<testsuite name=\"never\" tests=\"1\" skipped=\"0\""),
        "{valid}"
    );
    assert!(!valid.contains("disabled="), "{valid}");
    // Read back: the same cases.
    let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let cases: usize = back.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, 5);
}

#[test]
fn shards_merge_into_the_whole_and_refuse_overlap() {
    use crate::report::merge::{merge, merge_junit, MergeError};
    let whole = report();
    let (mut a, mut b) = (whole.clone(), whole.clone());
    a.trials.retain(|t| t.kernel != "never");
    b.trials.retain(|t| t.kernel == "never");
    b.kernels.clear();
    let merged = merge(vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(
        serde_json::to_value(&merged.trials).unwrap(),
        serde_json::to_value(&whole.trials).unwrap()
    );
    assert_eq!(merged.summary, whole.summary);
    assert!(matches!(
        merge(vec![a.clone(), a.clone()]),
        Err(MergeError::TwoKernels { .. })
    ));
    let j = merge_junit(vec![junit(&a), junit(&b)]).unwrap();
    assert_eq!(j.test_suites.len(), 2);
    assert!(merge_junit(vec![junit(&a), junit(&a)]).is_err());
    // A report survives being read back.
    let json = serde_json::to_string(&whole).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
}

#[test]
fn a_file_read_back_writes_the_same_xml() {
    // `report merge` of one shard must not change it: the skipped count
    // survives the rename and is written once.
    let xml = to_xml(&report()).unwrap();
    let back = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let again = xml_of(back).unwrap();
    assert_eq!(again, xml);
    let suite = again
        .lines()
        .find(|l| l.contains("<testsuite name=\"built-6.1@debian-sid\""))
        .unwrap();
    assert_eq!(suite.matches("skipped=").count(), 1, "{suite}");
    assert!(suite.contains("skipped=\"1\""), "{suite}");
}
