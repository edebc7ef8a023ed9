# The head of every script run/kernel_code.py sends into a kernel: it runs each kernel-side module
# (name, text, bindings to modules loaded before it) in a module object of its own, not in
# sys.modules and not in the notebook's namespace, and returns them by name.
def __grader_load(modules):
    import builtins
    import types

    loaded: dict = {}
    for name, source, binds in modules:
        module = types.ModuleType(name)
        for local, (target, attribute) in binds.items():
            value = loaded[target]
            module.__dict__[local] = value if attribute is None else getattr(value, attribute)
        builtins.exec(builtins.compile(source, "<grader " + name + ">", "exec", dont_inherit=True), module.__dict__)
        loaded[name] = module
    return loaded
