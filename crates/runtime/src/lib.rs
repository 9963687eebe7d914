//! Berth runtime (placeholder; being written).
