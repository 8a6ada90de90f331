"""A sentiment steering check written for llmkit: contrast prompts that build the direction, neutral
prompts that get continued with and without it, and a word lexicon that scores the continuations."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ..generate import generate
from ..models.llama import LlamaModel
from ..sampling import SamplingParams
from ..tokenizer import Tokenizer
from .steering import SteeringVector, difference_of_means

POSITIVE_PROMPTS = [
    "I love this. It is wonderful and makes me so happy.",
    "What a great day, everything is beautiful.",
    "This is excellent, I am delighted.",
    "I feel joyful and grateful.",
    "The food was delicious and the staff were kind.",
    "Best trip ever, we had so much fun.",
    "Thank you, this made my week. Fantastic work!",
    "The concert was amazing and the crowd was lovely.",
    "I am proud of you, you did a brilliant job.",
    "Such a pleasant surprise, I really enjoyed it.",
]
NEGATIVE_PROMPTS = [
    "I hate this. It is awful and makes me so sad.",
    "What a terrible day, everything is ugly.",
    "This is horrible, I am disgusted.",
    "I feel miserable and angry.",
    "The food was disgusting and the staff were rude.",
    "Worst trip ever, we were so bored.",
    "No thanks, this ruined my week. Dreadful work!",
    "The concert was painful and the crowd was nasty.",
    "I am ashamed of you, you did a pathetic job.",
    "Such an unpleasant surprise, I really hated it.",
]
NEUTRAL_PROMPTS = [
    "I went to the new restaurant downtown and",
    "Yesterday I watched a movie. It was",
    "My weekend was",
    "The weather today is",
    "I just finished reading the book, and I think it",
    "The hotel room we booked",
    "When I met my new neighbour, she",
    "The train ride to the city was",
    "Our team meeting this morning",
    "I tried the recipe my friend sent me and",
    "The new phone I bought",
    "At the museum last Sunday, we",
    "The customer service call lasted an hour and",
    "My first day at the new job",
    "The concert in the park",
    "I opened the package from the online store and",
    "The flight back home",
    "Our neighbour's dog",
    "The lecture this afternoon",
    "When we arrived at the beach,",
]
POSITIVE_WORDS = frozenset(
    [
        "good",
        "great",
        "love",
        "loved",
        "loving",
        "lovely",
        "wonderful",
        "amazing",
        "excellent",
        "happy",
        "glad",
        "delicious",
        "beautiful",
        "enjoy",
        "enjoyed",
        "enjoying",
        "fantastic",
        "perfect",
        "pleasant",
        "friendly",
        "fun",
        "best",
        "nice",
        "delighted",
        "joy",
        "joyful",
        "grateful",
        "awesome",
        "brilliant",
        "cozy",
        "excited",
        "exciting",
        "favorite",
        "favourite",
        "pleasure",
        "proud",
        "kind",
        "warm",
        "charming",
        "impressive",
        "recommend",
        "blast",
        "inviting",
        "thrilled",
        "fabulous",
        "incredible",
        "superb",
        "cheerful",
        "smile",
        "smiling",
        "hope",
        "hopeful",
        "comfortable",
        "relaxing",
        "peaceful",
    ]
)
NEGATIVE_WORDS = frozenset(
    [
        "bad",
        "terrible",
        "awful",
        "hate",
        "hated",
        "horrible",
        "sad",
        "angry",
        "disgusting",
        "disgusted",
        "rude",
        "ugly",
        "worst",
        "boring",
        "bored",
        "disappointing",
        "disappointed",
        "miserable",
        "poor",
        "annoying",
        "annoyed",
        "unfortunately",
        "sorry",
        "dull",
        "nasty",
        "painful",
        "upset",
        "worse",
        "mediocre",
        "bland",
        "gross",
        "dirty",
        "fail",
        "failed",
        "waste",
        "broken",
        "scary",
        "sick",
        "tired",
        "stressful",
        "frustrating",
        "frustrated",
        "dreadful",
        "pathetic",
        "ashamed",
        "unpleasant",
        "ruined",
        "cry",
        "crying",
        "lonely",
        "afraid",
    ]
)


def sentiment_words(text: str) -> tuple[int, int]:
    """(positive, negative) lexicon word counts in a text."""
    words = _words(text)
    return sum(w in POSITIVE_WORDS for w in words), sum(w in NEGATIVE_WORDS for w in words)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@dataclasses.dataclass
class SentimentRun:
    scale: float
    positive_words: int
    negative_words: int
    positive_continuations: int  # more positive than negative words
    negative_continuations: int
    total_words: int
    continuations: list[str]

    @property
    def positive_fraction(self) -> float:
        """Positive lexicon words among all words of the continuations."""
        return self.positive_words / self.total_words if self.total_words else 0.0

    @property
    def negative_fraction(self) -> float:
        return self.negative_words / self.total_words if self.total_words else 0.0


def sentiment_direction(model: LlamaModel, tokenizer: Tokenizer, layer: int) -> SteeringVector:
    """Positive minus negative contrast prompts' mean residual at their last token."""

    def encode(texts: Sequence[str]) -> list[list[int]]:
        return [tokenizer.encode(t, add_special_tokens=True) for t in texts]

    return difference_of_means(model, encode(POSITIVE_PROMPTS), encode(NEGATIVE_PROMPTS), layer)


def measure_sentiment(
    model: LlamaModel,
    tokenizer: Tokenizer,
    vector: SteeringVector,
    scales: Sequence[float],
    max_tokens: int = 40,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
) -> list[SentimentRun]:
    """Greedy continuations of the neutral prompts at each scale of the vector (0 = unsteered), scored."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0)
    runs = []
    for scale in scales:
        steering = None if scale == 0 else vector.scaled(scale)
        texts = [out.completions[0].text for out in generate(model, tokenizer, list(prompts), params, steering)]
        counts = [sentiment_words(t) for t in texts]
        runs.append(
            SentimentRun(
                scale=scale,
                positive_words=sum(p for p, _ in counts),
                negative_words=sum(n for _, n in counts),
                positive_continuations=sum(p > n for p, n in counts),
                negative_continuations=sum(n > p for p, n in counts),
                total_words=sum(len(_words(t)) for t in texts),
                continuations=texts,
            )
        )
    return runs
