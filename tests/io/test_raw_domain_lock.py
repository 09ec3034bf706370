"""Two synthesis runs at once cannot mix their domains: the second writer is refused, naming the first."""

import subprocess
import sys
import time

import numpy as np
import pytest
from kedro.io.core import DatasetError
from PIL import Image

from adaptseg.io import RawDomainDataset

WRITER = """
import sys, time
import numpy as np
from PIL import Image
from adaptseg.io import RawDomainDataset
RawDomainDataset(kind="gta5", root=sys.argv[1]).save({"images/00001": Image.fromarray(np.zeros((4, 4, 3), np.uint8))})
print("written", flush=True)
time.sleep(60)
"""


def test_a_second_writer_of_a_generated_root_is_refused_while_the_first_runs(tmp_path):
    root = tmp_path / "synthetic" / "gta5"
    first = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "written"
        image = Image.fromarray(np.ones((4, 4, 3), np.uint8))
        with pytest.raises(DatasetError, match=rf"being written by process {first.pid}"):
            RawDomainDataset(kind="gta5", root=str(root)).save({"images/00001": image})
    finally:
        first.kill()
        first.wait()
    time.sleep(0.1)
    RawDomainDataset(kind="gta5", root=str(root)).save({"images/00001": image})  # its lock went with it
    assert (root / "images" / "00001.png").is_file()
