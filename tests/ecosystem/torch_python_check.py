"""python3-torch reads what the libtorch adapter wrote: the C++ test exports a
trained model's checkpoint plus the values it holds; here the raw file is
parsed by the strict safetensors reader (json + numpy), each tensor is loaded
by name with torch.from_numpy and compared, and the model tensors are loaded
into the same architecture built in Python, whose output must match C++'s.

    torch_python_check.py TORCH_TEST_EXECUTABLE WORK_DIR SAFETENSORS_READER_DIR
"""
import json
import os
import shutil
import subprocess
import sys

import torch

test_executable, work_dir, reader_dir = sys.argv[1:4]
sys.path.insert(0, reader_dir)
from safetensors_reader import read_safetensors  # noqa: E402

shutil.rmtree(work_dir, ignore_errors=True)
os.makedirs(work_dir)
subprocess.run([test_executable, "--gtest_filter=TorchAdapterTest.ExportsForPython"], check=True,
               env={**os.environ, "CKPT_TORCH_EXPORT_DIR": work_dir}, stdout=subprocess.DEVNULL)

header, metadata, arrays = read_safetensors(os.path.join(work_dir, "model.safetensors"))
with open(os.path.join(work_dir, "expected.json"), encoding="utf-8") as file:
    expected = json.load(file)["tensors"]


def as_torch(values):
    return torch.tensor(values["values"], dtype=torch.float64).reshape(values["shape"])


def loaded(name):
    tensor = torch.from_numpy(arrays[name].copy())  # copy: the reader's arrays are read-only views
    return tensor.view(torch.bfloat16) if header[name]["dtype"] == "BF16" else tensor


failures = []
model_names = [name for name in expected if name.startswith("model/")]
for name in model_names:
    if name not in arrays:
        failures.append(f"{name}: not in the checkpoint")
    elif not torch.equal(loaded(name).double(), as_torch(expected[name])):
        failures.append(f"{name}: values differ from what C++ held")
unexpected_model = sorted(set(n for n in arrays if n.startswith("model/")) - set(model_names))
if unexpected_model:
    failures.append(f"tensors C++ did not describe: {unexpected_model}")

parameter_count = sum(1 for name in model_names if "running" not in name and "num_batches" not in name)
for index in range(parameter_count):
    step = loaded(f"optimizer/state/{index}/step")
    if step.dtype != torch.int64 or step.item() != 3:
        failures.append(f"optimizer/state/{index}/step: expected int64 3, found {step.dtype} {step.item()}")

# The names are PyTorch's own: the same architecture built in Python takes them as its state_dict.
model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
model.load_state_dict({name[len("model/"):]: loaded(name) for name in model_names}, strict=True)
model.eval()
with torch.no_grad():
    output = model(as_torch(expected["probe_input"]).float()).double()
if not torch.allclose(output, as_torch(expected["probe_output"]), rtol=1e-5, atol=1e-6):
    failures.append(f"Python forward pass {output.tolist()} differs from C++ {expected['probe_output']['values']}")

for failure in failures:
    print(failure, file=sys.stderr)
if not failures:
    shutil.rmtree(work_dir)
    print(f"python3-torch read {len(model_names)} model tensors and the optimizer state by name")
sys.exit(1 if failures else 0)
