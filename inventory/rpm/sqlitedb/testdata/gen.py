#!/usr/bin/env python3
"""Makes wal.sqlite + wal.sqlite-wal: an rpmdb.sqlite-shaped database whose last transaction is
only in the write-ahead log, as rpm leaves it between checkpoints. The header blobs are the real
rpm headers of ../../testdata/rpm-sqlite (bash, openssl-libs, tzdata from Rocky Linux 9); SQLite
itself writes both files. Run from this directory: python3 gen.py"""
import os, shutil, sqlite3

src = sqlite3.connect("../../testdata/rpm-sqlite/var/lib/rpm/rpmdb.sqlite")
blobs = [b for (b,) in src.execute("SELECT blob FROM Packages ORDER BY hnum")]
src.close()
for f in ("wal.sqlite", "wal.sqlite-wal", "tmp.sqlite", "tmp.sqlite-wal", "tmp.sqlite-shm"):
    if os.path.exists(f):
        os.remove(f)
db = sqlite3.connect("tmp.sqlite")
db.execute("PRAGMA page_size=1024")  # small pages: headers span overflow chains
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
db.execute("INSERT INTO Packages (blob) VALUES (?)", (blobs[0],))
db.commit()
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # bash is in the main file
db.execute("INSERT INTO Packages (blob) VALUES (?)", (blobs[1],))
db.execute("INSERT INTO Packages (blob) VALUES (?)", (blobs[2],))
db.commit()  # openssl-libs and tzdata are only in the WAL
shutil.copy("tmp.sqlite", "wal.sqlite")
shutil.copy("tmp.sqlite-wal", "wal.sqlite-wal")
db.close()
for f in ("tmp.sqlite", "tmp.sqlite-wal", "tmp.sqlite-shm"):
    if os.path.exists(f):
        os.remove(f)
