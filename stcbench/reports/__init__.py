"""Tables, figures, cost accounting, benchmark suites and static reports."""
