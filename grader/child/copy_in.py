# Run in the kernel before any of the notebook's code (run/execute.py, KernelSession.copy_in), so it
# is the grader's code that runs: copies the grader's folder of the workspace (read-only in the
# sandbox) into the kernel's own workspace, links as links (the data). The grader appends the call
# and deletes the function after it: no names are left behind in the notebook's namespace.
def _grader_copy_in(source, target):
    import os
    import shutil

    folders = [(source, target)]  # not shutil.copytree: it recurses, and a zip's folders may be 1,500 deep
    while folders:
        here, there = folders.pop()
        for entry in os.scandir(here):
            dest = os.path.join(there, entry.name)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), dest)
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(dest)
                folders.append((entry.path, dest))
            else:
                shutil.copyfile(entry.path, dest)
