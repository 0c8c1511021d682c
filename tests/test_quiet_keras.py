import subprocess
import sys

from pipeline.quiet_keras import tensorflow_info

NETWORK_FREE = ["pipeline", "pipeline.stages.prepare", "pipeline.stages.report", "pipeline.stages.train",
                "pipeline.modeling.heads", "pipeline.modeling.evaluation", "pipeline.features.store",
                "pipeline.features.cache", "pipeline.modeling.saved_model", "pipeline.modeling.feature_pass",
                "pipeline.predict", "pipeline.report.setting_warnings", "pipeline.workspace", "pipeline.benchmark",
                "pipeline.demo"]


def test_stages_without_a_network_start_without_tensorflow():
    probe = f"import sys, {', '.join(NETWORK_FREE)}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert shown.split() == ["False", "False"]


def test_a_linear_head_trains_without_tensorflow():
    probe = ("import sys, numpy as np; from pipeline.modeling.heads import make_head; "
             "make_head('l', {'type': 'logreg'}).fit(np.eye(4), [0, 1, 0, 1]); print('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"


def test_only_absl_start_up_info_is_dropped():
    assert tensorflow_info("I0000 00:00:1 cpu_feature_guard.cc:210] oneDNN custom operations are on.\n")
    assert tensorflow_info("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert not tensorflow_info("E0000 something failed\n")
    assert not tensorflow_info("error: features missing\n")
