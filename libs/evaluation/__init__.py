"""Evaluation: DAVIS J&F with the official toolkit's numbers (`davis.evaluate_davis`, CLI
`python3 -m libs.evaluation`) and YouTube-VOS submission packing (`youtube`)."""
