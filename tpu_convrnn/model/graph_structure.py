"""A graph config's structure (spec §1.2-§1.3), as plain data, before any layer exists.

* ``edge_pairs(edges)``: the ``[source, target]`` pairs, checked;
* ``parse_graph(nodes, pairs)``: node names, each node's feedforward source (its latest source
  that comes before it; None for the input node) and its other sources (skips and feedback,
  in lexicographic order as in the original);
* ``image_arrival(names, pairs)``: the first step at which each node's output depends on the
  image (one step per edge);
* ``chain_shapes``: every node's output shape along the feedforward chain.
"""
from __future__ import annotations


def edge_pairs(edges):
    pairs = []
    for e in edges:
        if not isinstance(e, (list, tuple)) or len(e) != 2:
            raise ValueError(f"edge {e!r}: expected a [source, target] pair")
        pairs.append((str(e[0]), str(e[1])))
    return pairs


def image_arrival(names, pairs) -> dict:
    """{node: first step whose output depends on the image}: the node's shortest edge
    distance from the input node (the first), since every edge costs one step."""
    arrival, frontier = {names[0]: 0}, [names[0]]
    while frontier:
        nxt = []
        for src in frontier:
            for s, d in pairs:
                if s == src and d not in arrival:
                    arrival[d] = arrival[src] + 1
                    nxt.append(d)
        frontier = nxt
    return arrival


def parse_graph(nodes, pairs):
    """(node names, feedforward source per node, other sources per node); errors name the
    node or edge."""
    names = []
    for spec in nodes:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"node {spec!r}: expected a dict with a 'name'")
        if spec["name"] in names:
            raise ValueError(f"duplicate node name {spec['name']!r}")
        names.append(spec["name"])
    if not names:
        raise ValueError("the graph has no nodes (and so no readout)")
    index = {n: i for i, n in enumerate(names)}
    sources = {n: [] for n in names}
    for src, dst in pairs:
        for end in (src, dst):
            if end not in index:
                raise ValueError(f"edge {src} -> {dst}: unknown node {end!r} "
                                 f"(nodes: {', '.join(names)})")
        if src == dst:
            raise ValueError(f"edge {src} -> {dst}: a node cannot feed itself (its memory is "
                             "its self-recurrence)")
        if src in sources[dst]:
            raise ValueError(f"edge {src} -> {dst} is listed twice")
        sources[dst].append(src)
    ff_source, other_sources = {}, {}
    for n in names:
        earlier = [s for s in sources[n] if index[s] < index[n]]
        if n == names[0]:
            ff = None
        elif not earlier:
            raise ValueError(f"node {n!r} has no feedforward input: add an edge from an "
                             "earlier node")
        else:
            ff = max(earlier, key=index.get)
        ff_source[n] = ff
        other_sources[n] = sorted(s for s in sources[n] if s != ff)
    return names, ff_source, other_sources


def chain_shapes(names, ff_source, frame, output_shape) -> dict:
    """Output shape of every node, walking the feedforward chain from ``frame`` (the image
    batch's shape): ``output_shape(name, input_shape)`` per node. Feedback never changes a
    shape, so this is all a node's shape depends on."""
    shapes = {}
    for n in names:
        shapes[n] = output_shape(n, frame if ff_source[n] is None else shapes[ff_source[n]])
    return shapes
