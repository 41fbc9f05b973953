//! Shared by the live test files: the endpoint, and a fresh database per test.

use clickhouse::Client;

pub fn url() -> String {
    std::env::var("CLICKHOUSE_URL").expect(
        "CLICKHOUSE_URL not set: run tests/run.sh, or eval \"$(tests/support/start-clickhouse.sh start)\" first",
    )
}

/// A new empty database named after the test; a client using it.
pub async fn fresh(name: &str) -> (Client, String) {
    let db = format!("t_{name}_{}", std::process::id());
    let admin = Client::default().with_url(url());
    admin.query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await.unwrap();
    admin.query(&format!("CREATE DATABASE {db}")).execute().await.unwrap();
    (admin.with_database(db.as_str()), db)
}
