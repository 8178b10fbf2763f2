#!/usr/bin/env python3
"""gen_csv_tables.py - CSV tables from scikit-learn's shipped data sets,
for tests/test_csv_train.sh.

What this is: `gen_csv_tables.py OUTDIR` writes three train/test pairs,
split deterministically (a fixed permutation, 80 % for training; the
classification splits stratified by class), and prints one line per
table with scikit-learn's baseline on the same split:

  diabetes_{train,test}.csv  regression, load_diabetes(scaled=False), a
                             header, target column "progression" last
  wine_{train,test}.csv      classification, load_wine, a header, the
                             cultivar as a string label in the FIRST column
                             ("class_0" .. "class_2", some fields quoted)
  cancer_{train,test}.csv    classification, load_breast_cancer, no
                             header, ';' delimiter, the integer label 0/1 in
                             column 30 (the last)

Baselines: LinearRegression (R^2 on the test file), and
LogisticRegression(max_iter=5000) on standardised features (statistics of
the training file) for accuracy.
What this is not: part of mltk; it only needs python3 with scikit-learn
(Debian: python3-sklearn).
"""
import os
import sys

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import StandardScaler


def split(y, stratify, seed=0, frac=0.8):
    rng = np.random.RandomState(seed)
    if not stratify:
        perm = rng.permutation(len(y))
        k = int(round(frac * len(y)))
        return np.sort(perm[:k]), np.sort(perm[k:])
    tr, te = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(frac * len(idx)))
        tr.extend(idx[:k])
        te.extend(idx[k:])
    return np.sort(np.array(tr)), np.sort(np.array(te))


def num(v):
    return repr(float(v))


def write(path, header, rows, delim=","):
    with open(path, "w", newline="") as f:
        if header is not None:
            f.write(delim.join(header) + "\r\n")
        for r in rows:
            f.write(delim.join(r) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_csv_tables.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    # regression: diabetes
    d = load_diabetes(scaled=False)
    tr, te = split(d.target, False)
    header = list(d.feature_names) + ["progression"]
    for name, idx in (("train", tr), ("test", te)):
        write(os.path.join(out, "diabetes_%s.csv" % name), header,
              ([num(v) for v in d.data[i]] + [num(d.target[i])] for i in idx))
    lr = LinearRegression().fit(d.data[tr], d.target[tr])
    print("baseline diabetes LinearRegression r2 %.4f (train %d, test %d)"
          % (r2_score(d.target[te], lr.predict(d.data[te])), len(tr), len(te)))

    # classification with string labels: wine, label first, some quoting
    w = load_wine()
    tr, te = split(w.target, True)
    header = ["cultivar"] + ['"%s"' % n for n in w.feature_names]
    for name, idx in (("train", tr), ("test", te)):
        write(os.path.join(out, "wine_%s.csv" % name), header,
              (['"%s"' % w.target_names[w.target[i]] if i % 2 else w.target_names[w.target[i]]]
               + [num(v) for v in w.data[i]] for i in idx))
    sc = StandardScaler().fit(w.data[tr])
    lg = LogisticRegression(max_iter=5000).fit(sc.transform(w.data[tr]), w.target[tr])
    print("baseline wine LogisticRegression accuracy %.4f (train %d, test %d)"
          % (accuracy_score(w.target[te], lg.predict(sc.transform(w.data[te]))),
             len(tr), len(te)))

    # classification with integer labels, no header, ';'
    b = load_breast_cancer()
    tr, te = split(b.target, True)
    for name, idx in (("train", tr), ("test", te)):
        write(os.path.join(out, "cancer_%s.csv" % name), None,
              ([num(v) for v in b.data[i]] + [str(int(b.target[i]))] for i in idx),
              delim=";")
    sc = StandardScaler().fit(b.data[tr])
    lg = LogisticRegression(max_iter=5000).fit(sc.transform(b.data[tr]), b.target[tr])
    print("baseline cancer LogisticRegression accuracy %.4f (train %d, test %d)"
          % (accuracy_score(b.target[te], lg.predict(sc.transform(b.data[te]))),
             len(tr), len(te)))


if __name__ == "__main__":
    main()
