//! `sqlx::migrate!` embeds the top-level `migrations/` folder at compile time; without this line
//! cargo would not rebuild the crate when a migration is added or edited.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
