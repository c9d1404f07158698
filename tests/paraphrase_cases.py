"""Open-ended answers in our own words, for the embedding surrogate and its guards:
``(reference, honest paraphrase)`` pairs (the guards must leave their similarity as it is), and
the ways a policy games cosine similarity (each guard must take the pay away)."""
from __future__ import annotations

import random

PARAPHRASES = [
    ("The mitochondria produce energy for the cell.", "Mitochondria generate the cell's energy."),
    ("Water boils at 100 degrees Celsius at sea level.", "At sea level, water reaches its boiling point at 100 °C."),
    ("The Earth orbits the Sun once a year.", "It takes the Earth one year to go around the Sun."),
    ("Photosynthesis turns light into chemical energy.", "Plants convert light energy into chemical energy through photosynthesis."),
    ("The man is riding a red bicycle.", "A man rides a red bike."),
    ("Two dogs are playing in the snow.", "A pair of dogs play in the snow."),
    ("The price rose because demand increased.", "Higher demand pushed the price up."),
    ("The bridge was closed for repairs.", "They shut the bridge to repair it."),
    ("She is reading a book in the park.", "In the park, she reads a book."),
    ("The chart shows sales growing every quarter.", "Sales increase each quarter according to the chart."),
    ("The cat is sleeping on the sofa.", "A cat sleeps on the couch."),
    ("Heat flows from hot objects to cold ones.", "Heat moves from warmer bodies to colder bodies."),
    ("The train leaves at noon.", "The train departs at 12 pm."),
    ("The tallest building in the picture is on the left.", "On the left stands the picture's tallest building."),
    ("The experiment failed because the sample was contaminated.", "Contamination of the sample made the experiment fail."),
    ("Vaccines train the immune system to recognise a pathogen.", "A vaccine teaches the immune system to identify a pathogen."),
    ("The river floods every spring.", "Each spring the river overflows its banks."),
    ("The company hired fifty new engineers.", "Fifty new engineers joined the company."),
    ("The graph has its maximum at x equals two.", "The graph peaks at x = 2."),
    ("The author argues that cities should plant more trees.", "According to the author, cities ought to plant more trees."),
    ("It is not safe to swim in this lake.", "Swimming in this lake isn't safe."),
    ("The store does not open on Sundays.", "On Sundays the store doesn't open."),
    ("The child is holding a blue balloon.", "A kid holds a blue balloon."),
    ("The meeting was moved to Friday.", "They rescheduled the meeting for Friday."),
    ("The plant needs more sunlight to grow.", "To grow, the plant requires more sun."),
    ("A triangle's angles add up to 180 degrees.", "The interior angles of a triangle sum to 180°."),
    ("The team won the final by two goals.", "The team took the final with a two-goal margin."),
    ("The library is next to the post office.", "The post office is beside the library."),
    ("Prices fell sharply after the announcement.", "After the announcement, prices dropped steeply."),
    ("The painting shows a storm at sea.", "A storm on the ocean is what the painting depicts."),
]

_JUNK = "apple river sky blue runs quickly under bright stone table green window".split()


def hacks(reference: str, unrelated: str, seed: int = 0) -> dict[str, str]:
    """The ways to game cosine similarity to ``reference``, each as a response."""
    words = reference.rstrip(".").split()
    r = random.Random(seed)
    negated = " ".join(words[:2] + ["do" if words[1].endswith("s") else "does", "not"] + words[2:]) + "."
    return {
        "reference repeated 50 times": " ".join([reference] * 50),
        "reference padded with 2,000 words": reference + " " + " ".join(r.choice(_JUNK) for _ in range(2000)),
        "reference negated": negated,
        "reference hedged": f"Maybe {reference[0].lower()}{reference[1:]}",
        "two alternatives": f"{reference.rstrip('.')} or {unrelated[0].lower()}{unrelated[1:]}",
        "refusal": "I cannot determine the answer from the image.",
    }
