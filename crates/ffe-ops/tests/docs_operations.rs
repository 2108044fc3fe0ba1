//! docs/operations.md describes what the code does: its example inventory parses, every check id
//! preflight and verify can emit is documented, and the exit-code table is the CLI's.

use std::path::Path;

use ffe_ops::inventory::SshOverrides;
use ffe_ops::preflight::CHECK_IDS;
use ffe_ops::{ExitCode, Inventory};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn the_example_inventory_parses_with_the_seed_numbers() {
    let inv = Inventory::from_file(
        &repo("docs/examples/inventory.json"),
        &SshOverrides::default(),
    )
    .unwrap();
    assert_eq!(inv.nodes.len(), 5);
    // The example spells out the seed's minimums: the same numbers as the default.
    let mut r = inv.requirements.clone();
    r.overridden = false;
    assert_eq!(r, ffe_ops::inventory::Requirements::default());
}

#[test]
fn every_preflight_check_and_exit_code_is_documented() {
    let doc = std::fs::read_to_string(repo("docs/operations.md")).unwrap();
    for id in CHECK_IDS.iter().chain(&ffe_ops::verify::check_ids()) {
        assert!(
            doc.contains(&format!("| `{id}` |")),
            "docs/operations.md has no row for check {id}"
        );
    }
    for code in [
        ExitCode::Ok,
        ExitCode::Failed,
        ExitCode::Usage,
        ExitCode::Inventory,
        ExitCode::Incomplete,
        ExitCode::Refused,
    ] {
        assert!(
            doc.contains(&format!("\n| {} | ", code.code())),
            "docs/operations.md has no row for exit code {}",
            code.code()
        );
    }
}
