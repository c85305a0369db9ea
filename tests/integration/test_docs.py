"""The README's configuration table says what the binaries really read."""
import os
import re
import subprocess

from conftest import ROOT


def test_readme_config_table_matches_binary_help(bin_dir):
    helptext = subprocess.run([os.path.join(bin_dir, "enms-api"), "--help"], capture_output=True,
                              text=True, check=True).stdout
    in_help = set(re.findall(r"^\s+(ENMS_[A-Z_]+)", helptext, re.M))
    readme = open(os.path.join(ROOT, "README.md")).read()
    in_readme = set(re.findall(r"^\| `(ENMS_[A-Z_]+)` \|", readme, re.M))
    assert in_help, helptext
    assert in_help == in_readme, (in_help ^ in_readme)
