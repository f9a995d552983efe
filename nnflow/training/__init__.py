"""Lightning shells over the pure-torch library: data, modules, callbacks, the train() runner."""
