"""The sheets the grader ships: one package per exercise sheet (see grader/sheet.py for what a sheet
package holds). The core never imports these by name; `grading.toml [sheet] name` picks one."""
