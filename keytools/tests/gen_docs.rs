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
