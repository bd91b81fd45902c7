"""The optional ``cloud-tpu-client`` (extra ``tpu-node``), for the old TPU *Node* architecture.

On TPU VMs, the supported path, TensorFlow's ``TPUClusterResolver(tpu='local')`` (one host) or
``TPUClusterResolver(tpu=NAME)`` (pod slice) needs no client. Only a TPU Node (a separate VM
driving the TPU over the network) needs ``cloud_tpu_client`` to look the TPU up and to configure
its runtime version. The package defines absl flags when imported, so it is imported only here,
only when asked for, never by ``import tpu_convrnn``.
"""
from __future__ import annotations

INSTALL_HINT = ("cloud-tpu-client is needed only for the old TPU Node architecture; install it "
                "with pip install 'tpu_convrnn[tpu-node]' (TPU VMs do not need it)")


def tpu_node_client(tpu: str, zone: str | None = None, project: str | None = None):
    """A ``cloud_tpu_client.Client`` for the TPU Node ``tpu``; ImportError with the install hint
    when the extra is not installed."""
    try:
        from cloud_tpu_client import Client
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return Client(tpu=tpu, zone=zone, project=project)
