//! ffe-lab: test harness only.
