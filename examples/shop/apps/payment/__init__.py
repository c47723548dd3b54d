"""payment: takes the money (pretend); can fail on purpose for resilience demos."""
