"""lm-eval task definitions of Table 2 (one YAML per benchmark, shared `_template_yaml`, hooks in `utils.py`)."""

from pathlib import Path

TASK_DIR = Path(__file__).resolve().parent
