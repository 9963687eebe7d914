//! Berth image store (placeholder; being written).
