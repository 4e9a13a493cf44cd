//! `cargo xtask doctor` and the README tell the same story about what differs locally from AWS: the README's
//! "What differs locally from AWS" section lists exactly the sentences doctor prints, in the same order.

#[test]
fn the_readme_lists_exactly_the_differences_doctor_prints() {
    let readme = std::fs::read_to_string(tests::repo_root().join("README.md")).unwrap();
    let section = readme
        .split("## What differs locally from AWS")
        .nth(1)
        .expect("README.md has a `## What differs locally from AWS` section")
        .split("\n## ")
        .next()
        .unwrap();
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .collect();
    assert_eq!(
        listed,
        xtask::doctor::DIFFERENCES,
        "README.md's list must equal xtask::doctor::DIFFERENCES (edit both together)"
    );
}
