//! Costs of the identity primitives on the login and request paths.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use infrapilot_core::identity::{
    Claims, JwtKey, OpaqueToken, Password, PasswordParams, TokenKind, Totp, TotpSecret,
    hash_password, issue, verify, verify_password,
};
use infrapilot_core::ids::UserId;
use uuid::Uuid;

const NOW: i64 = 1_700_000_000;

fn passwords(c: &mut Criterion) {
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    let password = Password::new("correct horse battery staple", &[]).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let phc = hash_password(&password, &[7u8; 16], &PasswordParams::OWASP).unwrap_or_default();
    group.bench_function("verify_owasp_m19MiB_t2_p1", |b| {
        b.iter(|| verify_password(black_box(&phc), black_box("correct horse battery staple")))
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let key = JwtKey::new(&[42u8; 32]).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let claims = Claims::access(
        UserId::from_uuid(Uuid::from_u128(1)),
        None,
        None,
        Uuid::from_u128(2),
        Uuid::from_u128(3),
        NOW,
    );
    let token = issue(&claims, &key);
    c.bench_function("jwt_issue", |b| b.iter(|| issue(black_box(&claims), &key)));
    c.bench_function("jwt_verify", |b| {
        b.iter(|| verify(black_box(&token), &key, NOW))
    });
    let opaque = OpaqueToken::new(TokenKind::PersonalApiToken, Uuid::from_u128(4), [5u8; 32]);
    let text = opaque.to_string();
    let stored = opaque.hash();
    c.bench_function("opaque_parse_and_match", |b| {
        b.iter(|| OpaqueToken::parse(black_box(&text)).is_ok_and(|t| t.matches(&stored)))
    });
    let totp = Totp::new(TotpSecret::generate([9u8; 20]));
    let code = totp.code_at(NOW).unwrap_or_default();
    c.bench_function("totp_verify", |b| {
        b.iter(|| totp.verify(black_box(&code), NOW, None))
    });
}

criterion_group!(benches, passwords, tokens);
criterion_main!(benches);
