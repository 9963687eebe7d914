//! Berth engine (placeholder; being written).
