"""Export: a student (fp32 or quantized) -> the artifact a backend runs, verified against eager before it is written.

`targets` is the registry of export targets; `run.export` chains the stages (export, quantize, lower, serialize,
verify) and writes the artifact with `export_report.json`. Backends are imported inside the target modules only.
"""
