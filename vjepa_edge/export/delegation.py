"""The delegation report: how much of the model runs inside the backend's delegate.

For a .pte: the number of delegate partitions, operators inside and outside by name and count (ExecuTorch's
`get_delegation_info`, edge-api fact 12; `getitem`, which reads a delegate's outputs, is left out), and the share
of FLOPs inside. FLOPs are counted per operator from the shapes the edge graph records (node meta "val"), with
torch's own formulas (`torch.utils.flop_counter`: mm, addmm, bmm, convolution, ...), plus `linear` and
`scaled_dot_product_attention`, which backends keep whole and the counter has no formula for (fact 11). Ops
inside a delegate are read from each lowered module's original program. As in `FlopCounterMode`, only matrix
products and convolutions count (softmax, norms and elementwise ops are 0). `eager_flops` is FlopCounterMode's
total on the fp32 program (SDPA forced to its math kernel): the two totals agree when every FLOP was attributed.
For ONNX: the operators of the graph by type.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.fx import GraphModule, Node

SKIP = ("getitem", "executorch_call_delegate")  # plumbing, not compute


def _op_name(node: Node) -> str:
    target = node.target
    name = getattr(target, "__name__", None) or str(target)
    return str(getattr(target, "_op", None) or name)


def _aten(node: Node) -> Any:
    """The aten overload of an fx node (an edge op wraps one in `_op`)."""
    return getattr(node.target, "_op", node.target)


def _val(arg: Any) -> Any:
    return arg.meta.get("val") if isinstance(arg, Node) else arg


def node_flops(node: Node) -> int:
    """FLOPs of one call_function node, from its recorded shapes (0 where torch has no formula)."""
    from torch.utils.flop_counter import flop_registry

    op = _aten(node)
    out = node.meta.get("val")
    args = [torch.utils._pytree.tree_map(_val, a) for a in node.args]
    packet = getattr(op, "_overloadpacket", None)
    try:
        if packet is torch.ops.aten.linear:  # [.., K] x [N, K]: 2 K per output element
            return 2 * out.numel() * args[1].shape[-1]
        if packet is torch.ops.aten.scaled_dot_product_attention:  # q k^T and attn v
            q, k, v = args[:3]
            batch = math.prod(q.shape[:-2])
            return 2 * batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        if packet in flop_registry:
            return int(flop_registry[packet](*args, out_val=out))
    except (AttributeError, IndexError, TypeError):  # a node without shapes: nothing to count
        return 0
    return 0


def _count(graph_module: GraphModule) -> tuple[Counter[str], int]:
    ops: Counter[str] = Counter()
    flops = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node)
        if not any(s in name for s in SKIP):
            ops[name] += 1
            flops += node_flops(node)
    return ops, flops


def eager_flops(program: ExportedProgram) -> int:
    """FlopCounterMode's total for one call of `program` (SDPA on its math kernel, which the counter sees)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    module = program.module()
    args, kwargs = program.example_inputs or ((), {})
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return int(counter.get_total_flops())


def pte_delegation(edge_graph: GraphModule, program: ExportedProgram | None = None) -> dict[str, Any]:
    """Partitions, operators inside/outside by name and count, and the share of FLOPs inside, of an edge program's
    graph module after `to_edge_transform_and_lower`."""
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir.backend.utils import get_delegates

    info = get_delegation_info(edge_graph)
    inside: Counter[str] = Counter()
    flops_in = 0
    backends: Counter[str] = Counter()
    for call in get_delegates(edge_graph.graph):
        lowered = getattr(edge_graph, call.target)
        backends[lowered.backend_id] += 1
        ops, flops = _count(lowered.original_module.graph_module)
        inside += ops
        flops_in += flops
    outside, flops_out = _count(edge_graph)
    total = flops_in + flops_out
    report: dict[str, Any] = {
        "partitions": int(info.num_delegated_subgraphs),
        "backends": dict(backends),
        "ops_inside": sum(inside.values()),
        "ops_outside": sum(outside.values()),
        "inside": dict(sorted(inside.items(), key=lambda kv: -kv[1])),
        "outside": dict(sorted(outside.items(), key=lambda kv: -kv[1])),
        "flops_inside": flops_in,
        "flops_outside": flops_out,
        "flops_share_inside": flops_in / total if total else None,
    }
    if program is not None:
        report["eager_flops"] = eager_flops(program)
    return report


def onnx_ops(proto: Any) -> dict[str, Any]:
    """Operators of an ONNX graph by type (ONNX Runtime runs all of them on its CPU provider)."""
    ops = Counter(node.op_type for node in proto.graph.node)
    return {"ops": sum(ops.values()), "by_type": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}
