//! Rebuilds the server when a migration is added (the `sqlx::migrate!` macro embeds them).

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
