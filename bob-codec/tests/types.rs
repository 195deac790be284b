//! Every value the validated types accept goes on the wire as exactly one operand of one
//! line, and comes back out of the parser unchanged.

use bob_codec::types::{Host, Nickname, OptionKey, OptionValue, TunnelOption};
use bob_codec::{Command, Dialect, Operand};
use proptest::prelude::*;

/// Strings mixing the characters that matter: letters, separators, line breaks, `=`,
/// other control characters and non-ASCII whitespace.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => Just(' '),
            1 => Just('\t'),
            1 => Just('\n'),
            1 => Just('\r'),
            1 => Just('='),
            1 => Just('\u{0}'),
            1 => Just('\u{a0}'),
            1 => Just('é'),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #[test]
    fn nickname_is_one_operand(s in tricky()) {
        if let Ok(nick) = Nickname::new(s.clone()) {
            let line = Command::SetNick(Operand::Valid(nick.clone())).encode();
            prop_assert!(!line.contains(['\n', '\r']));
            prop_assert_eq!(
                Command::parse(&line, Dialect::Java).unwrap(),
                Command::SetNick(Operand::Valid(nick.clone()))
            );
            prop_assert_eq!(nick.as_str(), s.as_str());
        } else {
            prop_assert!(s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
    }

    #[test]
    fn host_is_one_operand(s in tricky()) {
        if let Ok(host) = Host::new(s.clone()) {
            let line = Command::OutHost(Operand::Valid(host.clone())).encode();
            prop_assert_eq!(
                Command::parse(&line, Dialect::I2pd).unwrap(),
                Command::OutHost(Operand::Valid(host.clone()))
            );
            prop_assert_eq!(host.as_str(), s.as_str());
        }
    }

    #[test]
    fn option_is_one_pair(k in tricky(), v in tricky()) {
        let (Ok(key), Ok(value)) = (OptionKey::new(k.clone()), OptionValue::new(v.clone())) else {
            return Ok(());
        };
        let opt = TunnelOption::new(key, value);
        let line = Command::Option(Operand::Valid(vec![opt.clone()])).encode();
        prop_assert_eq!(
            Command::parse(&line, Dialect::Java).unwrap(),
            Command::Option(Operand::Valid(vec![opt.clone()]))
        );
        let operands: Vec<String> = line.split(' ').skip(1).map(str::to_owned).collect();
        let pairs = bob_codec::command::parse_option_pairs(&operands, Dialect::Java).unwrap();
        prop_assert_eq!(pairs, vec![(k, v)]);
        prop_assert_eq!(opt.to_string().parse::<TunnelOption>().unwrap(), opt);
    }
}
