"""The model: cells, nodes and their ops, the unrolled graph, readouts, the released
models (zoo) and their builders, and the execution settings that say how it is computed."""
