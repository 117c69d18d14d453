"""billing-core: the pure billing domain. Stdlib and msgspec only."""
