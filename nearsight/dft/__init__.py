"""Run Quantum ESPRESSO on atomic snapshots and collect each into a snapshot file."""
