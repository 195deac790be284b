//! `bob-keygen --generate-completions SHELL` and `--generate-man`: made from the clap
//! definition, so every subcommand and flag appears.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_bob-keygen");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run bob-keygen")
}

#[test]
fn completions_name_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["--generate-completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        for word in ["generate", "vanity", "bob-keygen"] {
            assert!(text.contains(word), "{shell}: {word}");
        }
    }
    let out = run(&["--generate-completions", "tcsh"]);
    assert!(!out.status.success());
    let out = run(&["--generate-completions"]);
    assert!(!out.status.success());
}

#[test]
fn man_page_lists_the_subcommands() {
    let out = run(&["--generate-man"]);
    assert!(out.status.success());
    let man = String::from_utf8(out.stdout).expect("utf-8");
    assert!(man.contains(".TH bob-keygen"), "{man}");
    for word in ["generate", "vanity"] {
        assert!(man.contains(word), "{word}");
    }
}

#[test]
fn man_dir_has_a_page_per_subcommand_and_errors_read_like_the_others() {
    let dir = std::env::temp_dir().join(format!("bob-keygen-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = run(&["--generate-man-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let main = std::fs::read_to_string(dir.join("bob-keygen.1")).unwrap();
    for sub in ["generate", "vanity"] {
        assert!(
            main.replace("\\-", "-")
                .contains(&format!("bob-keygen-{sub}(1)")),
            "{sub}"
        );
        assert!(dir.join(format!("bob-keygen-{sub}.1")).is_file(), "{sub}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // every failure of bob-keygen is one `error: ...` line, the generator flags' too
    let out = run(&["--generate-completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: unknown shell"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
