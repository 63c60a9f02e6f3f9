"""Inter-annotator agreement: `coefficients` (pure measures), `report` (over a corpus), `render`."""
