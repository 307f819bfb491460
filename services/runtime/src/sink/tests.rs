use super::*;

#[test]
fn classifies_by_exception_code() {
    let bad = |m: &str| clickhouse::error::Error::BadResponse(m.to_string());
    assert_eq!(
        classify(&bad("Code: 252. DB::Exception: Too many parts")),
        ErrorClass::Transient
    );
    assert_eq!(
        classify(&bad(
            "Code: 60. DB::Exception: Table wxpulse.x does not exist"
        )),
        ErrorClass::Permanent
    );
    assert_eq!(classify(&bad("502 Bad Gateway")), ErrorClass::Transient);
    assert_eq!(
        classify(&clickhouse::error::Error::TimedOut),
        ErrorClass::Transient
    );
    assert_eq!(exception_code("Code: 1001. DB::Exception: x"), Some(1001));
}
