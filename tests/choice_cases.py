"""Multiple-choice answers in our own words: ``(response, choices, expected)``; ``expected`` is the
option letter a careful grader reads from the response, or None where it names no single option
(a hedge, a list, a refusal, an invalid letter: never paid, never an earlier letter instead).
``choices`` None means five options A-E given by letter only."""
from __future__ import annotations

COLORS = ["red", "green", "blue", "yellow"]
ANIMALS = ["a trout", "a whale", "a shark", "a squid"]

EXPLICIT = [
    ("The answer is B.", None, "B"),
    ("Answer: C", None, "C"),
    ("answer: (D)", None, "D"),
    ("Final answer: A", None, "A"),
    ("Final Answer: (E)", None, "E"),
    ("<answer>B</answer>", None, "B"),
    ("<answer> (C) </answer>", None, "C"),
    ("<think>A looks wrong</think><answer>D</answer>", None, "D"),
    ("\\boxed{B}", None, "B"),
    ("So the answer is $\\boxed{C}$.", None, "C"),
    ("\\boxed{\\text{D}}", None, "D"),
    ("\\boxed{(A)}", None, "A"),
    ("Therefore, the correct option is B.", None, "B"),
    ("The correct answer is (C) blue.", COLORS, "C"),
    ("The best option is D) yellow", COLORS, "D"),
    ("I choose B.", None, "B"),
    ("I pick option C.", None, "C"),
    ("I'd select A.", None, "A"),
    ("I will go with D.", None, "D"),
    ("My answer: E", None, "E"),
    ("B is correct.", None, "B"),
    ("Option C is the right one.", None, "C"),
    ("Comparing the options carefully, the answer is A because the others fail.", None, "A"),
    ("**Answer: B**", None, "B"),
    ("Answer: **C**", None, "C"),
    ("Answer: *D*", None, "D"),
    ("Answer: `A`", None, "A"),
    ("> Answer: B", None, "B"),
    ("Answer: __C__", None, "C"),
    ("<ANSWER>D</ANSWER>", None, "D"),
    ("<Answer>b</Answer>", None, "B"),
    ("Reasoning done.\n<answer> c", None, "C"),
    ("<answer>a</answer>", None, "A"),
    ("a", None, "A"),  # a response that is the letter alone, whatever its case
    ("Final answer: b", None, "B"),
    ("The answer is d.", None, "D"),
    ("答案是C", None, "C"),
    ("答案为：B", None, "B"),
    ("正确答案是 D。", None, "D"),
    ("所以答案：A", None, "A"),
    ("答えはBです。", None, "B"),
    ("正解はC", None, "C"),
    ("정답은 D입니다.", None, "D"),
    ("정답: A", None, "A"),
    ("La respuesta es B.", None, "B"),
    ("La réponse est C.", None, "C"),
    ("Die Antwort ist D.", None, "D"),
    ("Answer: blue", COLORS, "C"),
    ("The answer is a whale.", ANIMALS, "B"),
    ("<answer>yellow</answer>", COLORS, "D"),
    ("Answer: B. green", COLORS, "B"),
    ("Answer: (A) red", COLORS, "A"),
    ("Answer: A, since the others contradict the data.", None, "A"),
    ("The answer is B, not C.", None, "B"),
    ("Answer: B\n\nExplanation: option A fails because the trout is a fish.", None, "B"),
    ("After checking each, the answer is: C", None, "C"),
    ("Thus the answer is option (D).", None, "D"),
    ("Hence, answer — B", None, "B"),
    ("Answer:\nC", None, "C"),
    ("The right choice is A.", None, "A"),
    ("Correct option: E", None, "E"),
    ("Answer: (B)\nFinal answer: (B)", None, "B"),
    ("The correct answer is: **(D)**", None, "D"),
    ("So the final answer is \\boxed{\\text{(C)}}", None, "C"),
    ("Answer: A. Actually no, the answer is E.", None, "E"),
    ("<answer>The answer is C</answer>", None, "C"),
    ("answer: b) green", COLORS, "B"),
    ("I would choose yellow.", COLORS, "D"),
    ("I pick B", None, "B"),
    ("The answer is E", COLORS, None),
    ("It must be none of these.", ["12", "2", "7.5", "none of these"], "D"),
]

HEDGES = [
    ("The answer is A or B.", None, None),
    ("Answer: A, B", None, None),
    ("Answer: B and C", None, None),
    ("The answer is (A) or (D).", None, None),
    ("<answer>B\nD</answer>", None, None),
    ("<answer>A/C</answer>", None, None),
    ("\\boxed{A, B}", None, None),
    ("\\boxed{B} or \\boxed{C}", None, None),
    ("Answer: A & D", None, None),
    ("Answer: either B or E", None, None),
    ("The answer could be A or C.", None, None),
    ("Answer: A, B, C, D", None, None),
    ("<answer>ABCD</answer>", None, None),
    ("Answer: red or blue", COLORS, None),
    ("The answer is green and yellow.", COLORS, None),
    ("Answer: (A) red, (B) green, (C) blue, (D) yellow", COLORS, None),
    ("答案是A或B", None, None),
    ("Answer: B or D, I am not sure.", None, None),
    ("Final answer: C/D", None, None),
    ("<answer>A) or B)</answer>", None, None),
    ("I choose A and B.", None, None),
    ("Answer: both A and C", None, None),
    ("Answer: A+B", None, None),
    ("The answer is B; it might also be D.", None, None),
    ("Answer: all of A, B and C", None, None),
]

CORRECTIONS = [
    ("Answer: A or B. Actually, I choose C.", None, "C"),
    ("Answer: D\nFinal answer: a", None, "A"),
    ("The answer is A. 答案为：d", None, "D"),
    ("The answer is B. Wait, re-checking: the answer is C.", None, "C"),
    ("<answer>A</answer> Hmm, no. <answer>E</answer>", None, "E"),
    ("Answer: C\nOn reflection, the answer is B.", None, "B"),
    ("\\boxed{A} ... correction: \\boxed{D}", None, "D"),
    ("I first thought A. Final answer: B", None, "B"),
    ("The answer is D.\n\nFinal Answer: (C)", None, "C"),
    ("Answer: B\n答案：C", None, "C"),
    ("(E) was a previous candidate. <answer>a</answer>", None, "A"),
    ("Option B seemed right. The answer is C.", None, "C"),
]

INVALID_FINALS = [
    ("(B) is tempting. Answer: Z", None, None),
    ("A is plausible. <answer>none</answer>", None, None),
    ("<answer></answer>", None, None),
    ("Answer: F", None, None),
    ("Answer: E", COLORS, None),
    ("The answer is B.\nFinal answer: none of the above", None, None),
    ("Answer: I don't know", None, None),
    ("Answer: cannot be determined", None, None),
    ("<answer>?</answer>", None, None),
    ("\\boxed{}", None, None),
    ("The answer is 42.", None, None),
    ("Answer: purple", COLORS, None),
]

NEGATIONS = [
    ("The answer is not yellow.", COLORS, None),
    ("Answer: not A", None, None),
    ("It is not red, so the answer is blue.", COLORS, "C"),
    ("Answer: neither red nor green", COLORS, None),
    ("The answer isn't B.", None, None),
    ("Answer: anything but C", None, None),
    ("The answer is not a trout.", ANIMALS, None),
    ("Not green. Answer: yellow", COLORS, "D"),
    ("Answer: definitely not D", None, None),
    ("The answer is blue, not red.", COLORS, "C"),
]

NO_STATEMENT = [
    # a final line that is the answer alone
    ("The trout breathes through gills, the whale through lungs.\nB", ANIMALS, "B"),
    ("Reasoning about each option...\n(C)", None, "C"),
    ("Long reasoning.\n\nD.", None, "D"),
    ("After weighing it all, it must be the second option, B.", None, "B"),
    ("I compared them, a whale.", ANIMALS, "B"),
    ("Checked every option.\n\nyellow", COLORS, "D"),
    # refusals, lists and prose that names no single option: never paid
    ("I can't help with that.", None, None),
    ("The answer cannot be determined from the information given.", None, None),
    ("The image is not provided, so I cannot answer.", COLORS, None),
    ("None of the options is correct.", COLORS, None),
    ("A. red\nB. green\nC. blue\nD. yellow", COLORS, None),
    ("(A) red (B) green (C) blue (D) yellow", COLORS, None),
    ("t = 7/2 = 3.5, which is not in the options", ["7", "3", "2", "5"], None),
    ("The solution requires more data.", ["Solution A", "Solution B", "Neither", "Both"], None),
    ("Option (b) looks odd, but I cannot decide.", ["(a)", "(b)", "(c)", "(d)"], None),
    ("A whale is a mammal and a trout is a fish; which one is meant is unclear.", ANIMALS, None),
    ("There are many colors: red, green, blue and yellow.", COLORS, None),
    ("I think it's between A and C.", None, None),
    ("", None, None),
    ("Let me think step by step about the question.", None, None),
    ("The sky is blue because of Rayleigh scattering, and leaves are green.", COLORS, None),
]

CARS = ["a blue bus", "a green truck", "a red car", "a bike"]
CELL = ["the nucleus", "the ribosome", "the membrane", "the mitochondria"]
SOLUTIONS = ["neither; their concentrations are the same", "Solution A", "Solution B"]
EIGHT = [f"shape {i}" for i in range(1, 9)]

# Round 2: what a careful grader reads that the first rule set refused or paid wrongly.
ROUND2 = [
    # a lower-case letter right after a marker is a selection; the article needs no marker
    ("The answer is c because the two shapes match", None, "C"),
    ("Answer: d", None, "D"),
    ("I choose b because the arrow points up", None, "B"),
    ("the answer is a since it is the only red one", None, "A"),
    ("The answer is a whale.", ANIMALS, "B"),
    # markers in other languages, fullwidth punctuation included
    ("答案是 c，因为两个图形一样。", None, "C"),
    ("选B，因为它与图片一致。", None, "B"),
    ("정답은 D", None, "D"),
    ("옵션 A", None, "A"),
    ("答えはC", None, "C"),
    ("答案是（B）", None, "B"),
    # a label and its option's text agree; a label and another option's text conflict
    ("C. a red car", CARS, "C"),
    ("(b) a green truck", CARS, "B"),
    ("d. the mitochondria", CELL, "D"),
    ("C. a blue bus", CARS, None),
    # markdown and quotes
    ("The answer is **c** because the circles match.", None, "C"),
    ("**D.** The object is a bus.", None, "D"),
    ("'B'", None, "B"),
    ("`A`", None, "A"),
    ("“d”", None, "D"),
    # letters beyond E where the options reach them
    ("G", EIGHT, "G"),
    ("Answer: h", EIGHT, "H"),
    # option texts that hold letters are not a second option
    ("The answer is (B) Solution A", ["Solution B", "Solution A", "Solution C"], "B"),
    ("C (R, S, T)", ["(P, Q)", "(Q, R)", "(R, S, T)"], "C"),
    # hedges and conflicts on every path, tags or none
    ("(B) or (C)", None, None),
    ("A, C", None, None),
    ("Options A, B, C, D", None, None),
    ("Two answers are possible.\nA\nC", None, None),
    ("\\boxed{B} then \\boxed{D}", None, None),
    ("B is not my selection.", None, None),
    ("The answer is probably B.", None, None),
    ("I choose plan B.", None, None),
    # a distractor label before the stated answer
    ("The marker ID_A is decorative. Answer: c because the circles match.", None, "C"),
    ("The diagram labels an earlier candidate (A). The answer is B.", None, "B"),
    # containers decide, and malformed ones are no answer
    ("<answer>B</answer>\nAnswer: C", None, "B"),
    ("The answer is A. <answer>none</answer>", None, None),
    ("<answer>B</wrong>", None, None),
    ("\\boxed{B", None, None),
    ("The answer is B.</answer>", None, None),
    ("<answer><answer>B</answer></answer>", None, None),
    ("\\boxed{A} then \\boxed{}", None, None),
    # words and identifiers are not letters
    ("Answer: DNA", None, None),
    ("The camera model is B2.", None, None),
    ("See https://b.example.org for details.", None, None),
    ("A bus is parked beside the road.", None, None),
    ("A because it is the only valid option", None, "A"),
    ("The visible count matches (C).", None, "C"),
    ("The wheel count is four; D", None, "D"),
    # real outputs of multimodal math: the value stated, never an option inside it
    ("So QR is \\sqrt{3}.", ["3", "\\sqrt{3}", "2\\sqrt{3}", "6"], "B"),
    ("PC + CD + PD = 4 + 8 + 4 = **16**.", ["8", "12", "16", "cannot be determined"], "C"),
    ("Therefore, none of the options A, B, C, D is correct.", ["14cm", "28cm", "10cm", "20cm"], None),
    ("Therefore, the correct answer is (D) 140°.", ["45°", "40°", "25°", "20°"], None),
    ("Therefore, option C, garter snakes would decrease, is the correct answer.",
     ["mice would increase", "sparrows increased", "garter snakes would decrease", "grass decreased"], "C"),
    ("So the most likely equilibrium population count is C.", ["40", "60", "80", "100"], "C"),
    ("The correct option is therefore (B).", ["yes", "no"], "B"),
    ("Image B has the most coefficients.", ["(c)", "(d)", "(a)", "(b)", "(e)"], None),
    ("So Texas is higher than Ohio.", ["Yes", "No"], None),  # prose the rules leave to a model
]

CASES = EXPLICIT + HEDGES + CORRECTIONS + INVALID_FINALS + NEGATIONS + NO_STATEMENT + ROUND2
