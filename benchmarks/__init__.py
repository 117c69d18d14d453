"""Side-by-side benchmarks: each case runs billing-core and a baseline doing the same work, in the
same process and run, and reports the ratio. Not part of `make test`; run with `make bench`."""
