//! Unit tests of the shared bencode reader: syntax, limits, lookups and prefix decoding.

use super::*;

fn ints(v: Value<'_>) -> Vec<i64> {
    match v {
        Value::List(l) => l
            .iter()
            .map(|x| match x {
                Value::Int(n) => n,
                other => panic!("not an int: {other:?}"),
            })
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

#[test]
fn integers_at_the_limits() {
    let v = decode(b"li0ei-1ei9223372036854775807ei-9223372036854775808ee").unwrap();
    assert_eq!(ints(v), vec![0, -1, i64::MAX, i64::MIN]);
    assert!(matches!(
        decode(b"i9223372036854775808e"),
        Err(BencodeError::IntegerOverflow(_))
    ));
}

#[test]
fn refuses_malformed_syntax() {
    for bad in [
        &b"i-0e"[..],
        b"i03e",
        b"ie",
        b"i1",
        b"4:abc",
        b"-1:a",
        b"01:a",
        b"d1:ae",
        b"di1ei2ee",
        b"l",
        b"x",
        b"",
    ] {
        assert!(
            decode(bad).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn refuses_trailing_bytes() {
    assert_eq!(
        decode(b"i1ei2e").unwrap_err(),
        BencodeError::TrailingData {
            offset: 3,
            extra: 3
        }
    );
}

#[test]
fn unsorted_keys_are_read_and_flagged_non_canonical() {
    let Value::Dict(d) = decode(b"d1:bi2e1:ai1ee").unwrap() else {
        panic!("not a dict")
    };
    assert!(!d.is_canonical());
    let keys: Vec<_> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![&b"b"[..], &b"a"[..]]);

    let Value::Dict(d) = decode(b"d1:ad1:zi1e1:yi2eee").unwrap() else {
        panic!("not a dict")
    };
    assert!(
        !d.is_canonical(),
        "a nested unsorted dict taints its parent"
    );
    let Value::Dict(d) = decode(b"d1:ad1:yi1e1:zi2eee").unwrap() else {
        panic!("not a dict")
    };
    assert!(d.is_canonical());
}

#[test]
fn raw_dict_bytes_are_exact() {
    let doc = b"d4:infod1:xi1ee3:zzz0:e";
    let Value::Dict(root) = decode(doc).unwrap() else {
        panic!("not a dict")
    };
    assert_eq!(root.raw(), &doc[..]);
    let (_, Value::Dict(info)) = root.iter().next().unwrap() else {
        panic!("info is not a dict")
    };
    assert_eq!(info.raw(), b"d1:xi1ee");
}

#[test]
fn depth_is_capped() {
    let mut deep = vec![b'l'; MAX_DEPTH + 1];
    deep.extend(vec![b'e'; MAX_DEPTH + 1]);
    assert!(matches!(decode(&deep), Err(BencodeError::TooDeep(_))));
    let mut ok = vec![b'l'; MAX_DEPTH];
    ok.extend(vec![b'e'; MAX_DEPTH]);
    assert!(decode(&ok).is_ok());
}

#[test]
fn huge_string_length_is_an_error_not_an_allocation() {
    assert!(matches!(
        decode(b"99999999999999999:x"),
        Err(BencodeError::UnexpectedEnd(_))
    ));
}

fn dict(doc: &[u8]) -> Dict<'_> {
    decode(doc).unwrap().as_dict().expect("a dictionary")
}

#[test]
fn prefix_decoding_ignores_what_follows_and_says_where_the_value_ends() {
    let (value, end) = decode_prefix(b"d1:ai1ee\n").unwrap();
    assert_eq!(end, 8);
    assert_eq!(value.as_dict().and_then(|d| d.get(b"a")?.as_int()), Some(1));
    // Whatever follows is not even looked at: raw piece data after a BEP 9 header, say.
    let (value, end) = decode_prefix(b"i7e\xff\x00garbage").unwrap();
    assert_eq!((value.as_int(), end), (Some(7), 3));
    // The strict decoder still refuses the same bytes.
    assert!(matches!(
        decode(b"d1:ai1ee\n"),
        Err(BencodeError::TrailingData {
            offset: 8,
            extra: 1
        })
    ));
}

#[test]
fn prefix_decoding_still_validates_the_first_value() {
    assert_eq!(decode_prefix(b"").unwrap_err(), BencodeError::Empty);
    for bad in [&b"d1:ai1e"[..], b"i03e\n", b"d1:ae\n", b"x", b"5:abc"] {
        assert!(
            decode_prefix(bad).is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let mut deep = vec![b'l'; MAX_DEPTH + 1];
    deep.extend(vec![b'e'; MAX_DEPTH + 1]);
    deep.push(b'\n');
    assert!(matches!(
        decode_prefix(&deep),
        Err(BencodeError::TooDeep(_))
    ));
}

#[test]
fn get_finds_keys_in_any_order_and_the_last_duplicate_wins() {
    let d = dict(b"d1:bi-3e1:al4:spame1:bi9ee");
    assert_eq!(d.get(b"b").and_then(|v| v.as_int()), Some(9));
    let list = d.get(b"a").and_then(|v| v.as_list()).unwrap();
    let items: Vec<_> = list.iter().filter_map(|v| v.as_bytes()).collect();
    assert_eq!(items, [&b"spam"[..]]);
    assert!(d.get(b"c").is_none());
    assert!(d.get(b"").is_none());
    assert!(d.get(b"ab").is_none(), "no prefix or concatenation matches");
    // Only this level is searched: a key of a nested dict is not a key of its parent.
    let nested = dict(b"d1:xd1:yi1eee");
    assert!(nested.get(b"y").is_none());
    let inner = nested.get(b"x").and_then(|v| v.as_dict()).unwrap();
    assert_eq!(inner.get(b"y").and_then(|v| v.as_int()), Some(1));
    assert!(dict(b"de").get(b"a").is_none());
}

#[test]
fn accessors_return_none_for_other_kinds() {
    let d = dict(b"d1:ii1e1:s1:x1:lle1:ddee");
    let [i, s, l, dd] = [b"i", b"s", b"l", b"d"].map(|k| d.get(k).unwrap());
    assert_eq!((i.as_int(), i.as_bytes().is_none()), (Some(1), true));
    assert_eq!((s.as_bytes(), s.as_int()), (Some(&b"x"[..]), None));
    assert!(l.as_list().is_some() && l.as_dict().is_none());
    assert!(dd.as_dict().is_some() && dd.as_list().is_none());
}
