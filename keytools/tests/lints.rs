//! keytools copies the workspace's lint table (to relax `unsafe_code` from "forbid" to "deny"
//! for its one intrinsics module); this fails when the copy drifts from the workspace's.

#[test]
fn lint_table_matches_the_workspace_except_unsafe_code() {
    let root: toml::Table = include_str!("../../Cargo.toml").parse().unwrap();
    let ours: toml::Table = include_str!("../Cargo.toml").parse().unwrap();
    let mut ws = root["workspace"]["lints"].as_table().unwrap().clone();
    let mut mine = ours["lints"].as_table().unwrap().clone();
    assert_eq!(ws["rust"]["unsafe_code"].as_str(), Some("forbid"));
    assert_eq!(mine["rust"]["unsafe_code"].as_str(), Some("deny"));
    for t in [&mut ws, &mut mine] {
        t["rust"].as_table_mut().unwrap().remove("unsafe_code");
    }
    assert_eq!(
        ws, mine,
        "keytools/Cargo.toml [lints] drifted from the workspace's"
    );
}

#[test]
fn only_the_intrinsics_module_allows_unsafe() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut allowing = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read_to_string(&p)
                .unwrap()
                .contains("allow(unsafe_code)")
            {
                allowing.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(allowing, vec!["multibuf.rs".to_owned()]);
}
