raise ModuleNotFoundError(
    "No module named " + repr(__name__) + " (the grader's code is not visible to a notebook)", name=__name__
)
