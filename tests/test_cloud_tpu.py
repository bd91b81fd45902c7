import importlib.util
import subprocess
import sys

import pytest

from tpu_convrnn import cloud_tpu


def test_importing_the_package_does_not_import_the_client():
    code = "import sys, tpu_convrnn; print('cloud_tpu_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.strip().endswith("False"), out.stderr[-1000:]


@pytest.mark.skipif(importlib.util.find_spec("cloud_tpu_client") is not None,
                    reason="cloud-tpu-client is installed")
def test_missing_extra_says_how_to_install_it():
    with pytest.raises(ImportError, match=r"tpu_convrnn\[tpu-node\]"):
        cloud_tpu.tpu_node_client("my-tpu-node")
