"""Encodes an official-format Behemoth folder with Hugging Face `tokenizers`.

Usage: python3 hf_encode.py FOLDER OUT.json

Loads FOLDER/metadata/tokenizer.json and writes OUT.json:
  {"vocab_size": N,
   "data": {"data/full_text_0.txt": [ids...], ...},
   "validations": {"validations/sro.txt": [[prompt ids], [target ids]], ...}}   (one pair per line)
The Swift tests compare these ids with the dataset's own token ids.
"""
import json
import os
import sys

from tokenizers import Tokenizer


def main():
    folder, out = sys.argv[1], sys.argv[2]
    tok = Tokenizer.from_file(os.path.join(folder, "metadata", "tokenizer.json"))
    result = {"vocab_size": tok.get_vocab_size(), "data": {}, "validations": {}}
    data_dir = os.path.join(folder, "data")
    for name in sorted(os.listdir(data_dir)):
        if name.startswith("full_text_") and name.endswith(".txt"):
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                result["data"]["data/" + name] = tok.encode(f.read()).ids
    for sub in ("validations", "questions"):
        d = os.path.join(folder, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if not name.endswith(".txt"):
                continue
            pairs = []
            with open(os.path.join(d, name), encoding="utf-8") as f:
                for line in f.read().split("\n"):
                    if not line:
                        continue
                    prompt, target = line.split("\t")
                    pairs.append([tok.encode(prompt).ids, tok.encode(target).ids])
            result["validations"][sub + "/" + name] = pairs
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
