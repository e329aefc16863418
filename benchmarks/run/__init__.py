"""Running: suites, the plan of a suite's cells, one cell's execution, records and their
files, claims that keep two runners off one cell, and the serial, worker and cluster
runners."""
