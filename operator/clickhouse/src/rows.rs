//! Rows read as JSON lines (`JSONEachRow`), not RowBinary. A RowBinary string declares its length before its
//! bytes, and the clickhouse crate allocates what a server declares: a hostile server's "string of a gigabyte"
//! aborted the process with a failed 24 GB allocation in a test. A JSON value is only as long as the bytes that
//! came, and those are bounded on the connection ([`crate::MAX_ANSWER_BYTES`]).

use clickhouse::error::Error;
use clickhouse::query::Query;
use serde::de::DeserializeOwned;

/// Every row of `query`, each line parsed into `T`.
pub(crate) async fn fetch_all<T: DeserializeOwned>(query: Query) -> Result<Vec<T>, Error> {
    // 64-bit integers as JSON numbers, not quoted strings (ClickHouse's default quotes them).
    let query = query.with_setting("output_format_json_quote_64bit_integers", "0");
    let mut cursor = query.fetch_bytes("JSONEachRow")?;
    let mut pending: Vec<u8> = Vec::new();
    let mut rows = Vec::new();
    while let Some(chunk) = cursor.next().await? {
        // Only the new bytes are searched for a line's end: a long line costs its length once.
        let Some(end) = chunk.iter().rposition(|b| *b == b'\n') else {
            pending.extend_from_slice(&chunk);
            continue;
        };
        pending.extend_from_slice(&chunk[..end]);
        for line in pending.split(|b| *b == b'\n') {
            rows.extend(parse(line)?);
        }
        pending.clear();
        pending.extend_from_slice(&chunk[end + 1..]);
    }
    rows.extend(parse(&pending)?);
    Ok(rows)
}

fn parse<T: DeserializeOwned>(line: &[u8]) -> Result<Option<T>, Error> {
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(line).map(Some).map_err(|e| Error::Custom(format!("unexpected row from the server: {e}")))
}
