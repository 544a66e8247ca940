//! What a failed operation and a `nil` read mean depends on the format:
//! Jepsen's EDN gets Knossos's contract (`:fail` did not happen, a `nil`
//! read says nothing), the etcd logs and porcupine keep their observation
//! meaning, ours follows each failure's error tag; `--semantics` overrides.

use checker::{check_history, formats, CheckOptions, Format, Semantics, Validity};

fn verdict(text: &str, format: Format, semantics: Option<Semantics>) -> Validity {
    let h = formats::parse(text, Some(format)).unwrap();
    let opts = CheckOptions {
        semantics,
        ..CheckOptions::default()
    };
    check_history(&h, &opts).unwrap().valid
}

const EDN_FAILED_CAS: &str = "{:type :invoke, :f :write, :value 0, :process 0}
{:type :ok, :f :write, :value 0, :process 0}
{:type :invoke, :f :cas, :value [0 1], :process 1}
{:type :fail, :f :cas, :value [0 1], :process 1}
{:type :invoke, :f :read, :value nil, :process 2}
{:type :ok, :f :read, :value 0, :process 2}";

const LOG_FAILED_CAS: &str = "INFO  jepsen.util - 0\t:invoke\t:write\t0
INFO  jepsen.util - 0\t:ok\t:write\t0
INFO  jepsen.util - 1\t:invoke\t:cas\t[0 1]
INFO  jepsen.util - 1\t:fail\t:cas\t[0 1]
INFO  jepsen.util - 2\t:invoke\t:read\tnil
INFO  jepsen.util - 2\t:ok\t:read\t0";

#[test]
fn a_failed_cas_in_jepsen_edn_did_not_happen() {
    assert_eq!(formats::Format::JepsenEdn.semantics(), Semantics::Jepsen);
    assert_eq!(
        verdict(EDN_FAILED_CAS, Format::JepsenEdn, None),
        Validity::Valid
    );
    // The same events, where the format says a failed cas found another value.
    assert_eq!(
        verdict(LOG_FAILED_CAS, Format::JepsenLog, None),
        Validity::Invalid
    );
    // Chosen explicitly, each meaning applies to either file.
    let obs = Some(Semantics::Observation);
    assert_eq!(
        verdict(EDN_FAILED_CAS, Format::JepsenEdn, obs),
        Validity::Invalid
    );
    let jep = Some(Semantics::Jepsen);
    assert_eq!(
        verdict(LOG_FAILED_CAS, Format::JepsenLog, jep),
        Validity::Valid
    );
}

#[test]
fn a_nil_register_read_constrains_nothing_in_jepsen_edn() {
    let edn = "{:type :invoke, :f :write, :value 1, :process 0}
{:type :ok, :f :write, :value 1, :process 0}
{:type :invoke, :f :read, :value nil, :process 1}
{:type :ok, :f :read, :value nil, :process 1}";
    assert_eq!(verdict(edn, Format::JepsenEdn, None), Validity::Valid);
    // Read as an observation of an empty register, it is a stale read.
    let obs = Some(Semantics::Observation);
    assert_eq!(verdict(edn, Format::JepsenEdn, obs), Validity::Invalid);
    // Ours: null is the absent value.
    let jsonl = r#"{"process":0,"type":"invoke","f":"write","value":1}
{"process":0,"type":"ok","f":"write","value":1}
{"process":1,"type":"invoke","f":"read","value":null}
{"process":1,"type":"ok","f":"read","value":null}"#;
    assert_eq!(verdict(jsonl, Format::Jsonl, None), Validity::Invalid);
}

#[test]
fn our_failures_follow_their_error_tag() {
    let with_tag = |tag: &str| {
        format!(
            r#"{{"process":0,"type":"invoke","f":"write","value":0}}
{{"process":0,"type":"ok","f":"write","value":0}}
{{"process":1,"type":"invoke","f":"cas","value":[0,1]}}
{{"process":1,"type":"fail","f":"cas","value":[0,1],"error":["{tag}","why"]}}"#
        )
    };
    assert_eq!(
        verdict(&with_tag("unexecuted"), Format::Jsonl, None),
        Validity::Valid
    );
    assert_eq!(
        verdict(&with_tag("cas-mismatch"), Format::Jsonl, None),
        Validity::Invalid
    );
}

#[test]
fn semantics_names_parse_and_bad_ones_are_usage_errors() {
    for name in Semantics::NAMES {
        let s: Semantics = name.parse().unwrap();
        assert_eq!(s.as_str(), *name);
    }
    let err = "sometimes".parse::<Semantics>().unwrap_err();
    assert!(err.to_string().contains("expected one of jepsen"), "{err}");
}
