"""The word-level tokenizer every tiny checkpoint uses, built in code (no downloads)."""

from __future__ import annotations

from collections.abc import Iterable

SPECIAL_TOKENS = ["<pad>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<video>", "<image>"]

WORDS = """
the a an is are was be of to in on at with from by for and or not it its this that these those there
what which who how many much does do did when where why whose video clip frame frames object objects
answer option options choice choices letter given directly best question questions please only
you helpful assistant system user carefully watch describe following select below
color colour shape first last appears appear appeared moving move moves direction left right up down
change changes changed same different count number one two three four five six seven eight nine ten
zero yes no red green blue yellow purple orange white black gray cyan magenta circle square triangle
cross star ball box size big small large top bottom middle before after during end start person
action happening happens doing scene camera background
""".split()

PUNCTUATION = list(".,:;?!'\"()-/")


def build_word_tokenizer(extra_words: Iterable[str] = ()):
    """A word-level tokenizer made in code: splits on whitespace and punctuation; special tokens
    stay whole; capitalised variants of every word; single letters A–F and digits are tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: list[str] = []
    for w in [*WORDS, *extra_words]:
        for v in (w, w.capitalize()):
            if v not in words:
                words.append(v)
    vocab_list = SPECIAL_TOKENS + list("ABCDEF") + [str(d) for d in range(10)] + PUNCTUATION
    vocab_list += [w for w in words if w not in vocab_list]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\s+"), behavior="removed"),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(individual_digits=True),
        ]
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token=None,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<pad>", "<unk>")],
        padding_side="left",
    )
    return fast


VICUNA_WORDS = ("USER", "ASSISTANT", "SYSTEM")


def word_tokenizer_with(
    named: dict[str, str] | None = None, extra_words: Iterable[str] = (), new_special: Iterable[str] = ()
):
    """build_word_tokenizer() plus extra special tokens; `named` also exposes them as the
    model-specific attributes processors read (e.g. tokenizer.start_image_token)."""
    tok = build_word_tokenizer(extra_words)
    new = [t for t in [*new_special, *(named or {}).values()] if t not in tok.get_vocab()]
    if new:
        tok.add_tokens(list(dict.fromkeys(new)), special_tokens=True)
    if named:
        tok._set_model_specific_special_tokens(dict(named))
    return tok
