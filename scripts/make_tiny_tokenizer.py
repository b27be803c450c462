"""Build the tiny byte-level BPE tokenizer used by the fast tests (tests/fixtures/tiny-tokenizer).

Deterministic: trained on the bundled Tatoeba sentences (all 14 languages), vocab 2000.
Re-run only to change the fixture: `python scripts/make_tiny_tokenizer.py`.
"""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "tiny-tokenizer"


def sentences():
    src = ROOT / "workbench" / "data" / "tatoeba"
    if not src.is_dir():
        src = ROOT.parent / "shared" / "data" / "tatoeba"
    for f in sorted(src.glob("eng-*.tsv")):
        for line in f.read_text(encoding="utf-8").splitlines()[1:200]:
            yield from line.split("\t")


def main() -> None:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sentences(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                       special_tokens=[("<bos>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    fast.chat_template = "{% for m in messages %}<bos>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}" \
                         "{% if add_generation_prompt %}assistant:{% endif %}"
    OUT.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(OUT)
    print("wrote", OUT, len(fast))


if __name__ == "__main__":
    main()
