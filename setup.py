"""The build's one hook (the rest is pyproject.toml): a students' wheel knows the sheet it is for.

`make student-package` builds the wheel with GRADER_SHEET set to the sheet grading.toml names; its
`grader check` then checks that sheet without a grading.toml (grader/sheet.py, `built_in_sheet`).
Without GRADER_SHEET (an editable install, any other build) nothing is added.
"""

import json
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def run(self):
        super().run()
        sheet = os.environ.get("GRADER_SHEET", "")
        if sheet:
            target = os.path.join(self.build_lib, "grader", "built_for.json")
            with open(target, "w", encoding="utf-8") as handle:
                json.dump({"sheet": sheet}, handle)


setup(cmdclass={"build_py": BuildPy})
