"""A realistic legacy sheet for benchmarks/import_bench.py: the shipped forms, as a site keeps them.

One row per patient × visit, as a REDCap-style long sheet: a visit row fills the visit's own forms,
and rows marked with a repeating form ("Repeat form" + "Instance") add serum markers or treatments.
The columns are the items of eight of crf_definitions/'s forms (demographics, diagnosis and stage,
social history, imaging timepoint, RECIST response, serum markers, treatment history, vital status),
with what real sheets carry:

  branching    smoking details only for smokers, PET tracer only for PET, contrast agent only with
               contrast, death and progression details, radiation dose or agents by treatment type;
               some hidden cells are filled anyway (a never-smoker's "0 cigarettes"), and dropped
  calculations year of birth, age at enrolment, BMI and the sum of target lesion diameters are
               left to the server (not in the sheet)
  checkboxes   body regions imaged, several in one cell ("Chest; Abdomen")
  repeats      one to three target lesions per assessment (a repeating group, one column pair per
               lesion), one to three serum markers and treatments per visit (repeating forms)
  variety      legacy labels mapped to codes, Excel dates beside DD/MM/YYYY strings, free text that
               never repeats (UIDs, MRNs, lesion sites, drug regimens), blanks and missing markers

`generate(path, rows, update=False)` writes the sheet; with `update=True` the same rows with about
60 % of the records corrected (one or two of their visible values changed), for a second import
over the first. `mapping_spec()` is the mapping a data manager would save for it.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

SEED = 11
MISSING = {"-9": "UNK", "n/a": "NA", "NK": "UNK"}
EVENTS = {"Baseline": "baseline", "On treatment": "on_treatment", "Follow-up": "follow_up"}

SEX = {"F": "female", "M": "male", "U": "unknown"}
RACE = {
    "White": "white",
    "Black": "black or african american",
    "Asian": "asian",
    "Native American": "american indian or alaska native",
    "Other": "other",
    "Unknown": "Unknown",
    "Declined": "not reported",
}
ETHNICITY = {"Hispanic": "hispanic or latino", "Non-Hispanic": "not hispanic or latino", "Unknown": "Unknown"}
LATERALITY = {"L": "Left", "R": "Right", "B": "Bilateral", "U": "Unknown"}
SMOKING = {
    "Never": "1",
    "Current": "2",
    "Former >15y": "3",
    "Former <=15y": "4",
    "Former, unknown when": "5",
    "Smoker, status unknown": "6",
    "Unknown": "Unknown",
}
MODALITY = {"CT": "CT", "MRI": "MR", "PET/CT": "PET_CT", "PET/MR": "PET_MR", "Bone scan": "NM"}
REGIONS = {
    "Head": "head",
    "Neck": "neck",
    "Chest": "chest",
    "Breast": "breast",
    "Abdomen": "abdomen",
    "Pelvis": "pelvis",
    "Whole body": "whole_body",
}
TRACER = {"FDG": "fdg", "FLT": "flt", "FES": "fes", "PSMA": "psma", "NaF": "naf"}
YES_NO = {"Y": "yes", "N": "no"}
MARKER = {
    "CA-125": "ca125",
    "CEA": "cea",
    "PSA": "psa",
    "CA 19-9": "ca19_9",
    "CA 15-3": "ca15_3",
    "Other": "other",
}
MARKER_UNIT = {
    "ca125": "U/mL",
    "cea": "ng/mL",
    "psa": "ng/mL",
    "ca19_9": "U/mL",
    "ca15_3": "U/mL",
    "other": "U/L",
}
TREATMENTS = [
    "Chemotherapy",
    "Targeted Molecular Therapy",
    "Immunotherapy (Including Vaccines)",
    "Hormone Therapy",
    "Radiation Therapy",
    "Concurrent Chemoradiation",
    "Surgery",
]
DRUGS = [
    "carboplatin",
    "paclitaxel",
    "docetaxel",
    "pembrolizumab",
    "trastuzumab",
    "letrozole",
    "capecitabine",
]
SITES = ["liver segment", "right lower lobe", "left upper lobe", "mediastinal node", "adrenal", "peritoneum"]
HISTOLOGY = [
    ("Infiltrating duct carcinoma, NOS", "8500/3", "Breast, upper-outer quadrant"),
    ("Adenocarcinoma, NOS", "8140/3", "Lung, lower lobe"),
    ("Serous cystadenocarcinoma, NOS", "8441/3", "Ovary"),
    ("Squamous cell carcinoma, NOS", "8070/3", "Base of tongue"),
    ("Lobular carcinoma, NOS", "8520/3", "Breast, NOS"),
    ("Clear cell adenocarcinoma, NOS", "8310/3", "Kidney, NOS"),
]
READERS = ["A. Okafor", "B. Lindqvist", "C. Moreau", "D. Tanaka", "E. Novak"]
LABS = ["Central lab", "Site lab A", "Site lab B", "Quest", "LabCorp"]

# header, form, item, extra mapping keys; the order of the sheet's columns
COLUMNS: list[tuple[str, str, str, dict]] = [
    ("MRN", "demographics", "medical_record_number", {}),
    ("DOB", "demographics", "date_of_birth", {}),
    ("Enrolled", "demographics", "enrollment_date", {}),
    ("Sex", "demographics", "gender", {"values": SEX}),
    ("Race", "demographics", "race", {"values": RACE}),
    ("Ethnicity", "demographics", "ethnicity", {"values": ETHNICITY}),
    ("Height (cm)", "demographics", "height", {}),
    ("Weight (kg)", "demographics", "weight", {}),
    ("Histology", "diagnosis_stage", "primary_diagnosis", {}),
    ("ICD-O-3", "diagnosis_stage", "morphology", {}),
    ("Primary site", "diagnosis_stage", "tissue_or_organ_of_origin", {}),
    ("Side", "diagnosis_stage", "laterality", {"values": LATERALITY}),
    ("Diagnosed", "diagnosis_stage", "date_of_diagnosis", {}),
    ("Grade", "diagnosis_stage", "tumor_grade", {}),
    ("AJCC ed.", "diagnosis_stage", "ajcc_edition", {}),
    ("cT", "diagnosis_stage", "ajcc_clinical_t", {}),
    ("cN", "diagnosis_stage", "ajcc_clinical_n", {}),
    ("cM", "diagnosis_stage", "ajcc_clinical_m", {}),
    ("Clinical stage", "diagnosis_stage", "ajcc_clinical_stage", {}),
    ("Smoking", "social_history", "tobacco_smoking_status", {"values": SMOKING}),
    ("Cig/day", "social_history", "cigarettes_per_day", {}),
    ("Years smoked", "social_history", "years_smoked", {}),
    ("Pack-years", "social_history", "pack_years_smoked", {}),
    ("Started smoking", "social_history", "tobacco_smoking_onset_year", {}),
    ("Quit", "social_history", "tobacco_smoking_quit_year", {}),
    ("Alcohol", "social_history", "alcohol_history", {}),
    ("Alcohol use", "social_history", "alcohol_intensity", {}),
    ("Scan date", "imaging_timepoint", "scan_date", {}),
    ("Scan timepoint", "imaging_timepoint", "imaging_timepoint_label", {}),
    ("Modality", "imaging_timepoint", "imaging_modality", {"values": MODALITY}),
    ("Regions", "imaging_timepoint", "imaging_body_region", {"values": REGIONS}),
    ("Study UID", "imaging_timepoint", "study_instance_uid", {}),
    ("Tracer", "imaging_timepoint", "pet_radiotracer", {"values": TRACER}),
    ("Contrast", "imaging_timepoint", "contrast_administered", {"values": YES_NO}),
    ("Contrast agent", "imaging_timepoint", "contrast_agent", {}),
    ("RECIST date", "response_assessment", "recist_assessment_date", {}),
    ("RECIST timepoint", "response_assessment", "recist_timepoint", {}),
    *[
        column
        for n in (1, 2, 3)
        for column in (
            (f"Lesion {n} site", "response_assessment", "target_lesion_site", {"row": n}),
            (f"Lesion {n} (mm)", "response_assessment", "target_lesion_diameter", {"row": n}),
        )
    ],
    ("Non-target", "response_assessment", "non_target_response", {}),
    ("New lesions", "response_assessment", "new_lesions", {"values": YES_NO}),
    ("New lesion where", "response_assessment", "new_lesion_site", {}),
    ("Overall response", "response_assessment", "overall_response", {}),
    ("Reader", "response_assessment", "response_reader", {}),
    ("Marker date", "serum_markers", "serum_marker_date", {}),
    ("Marker", "serum_markers", "serum_marker", {"values": MARKER}),
    ("Marker (other)", "serum_markers", "serum_marker_other", {}),
    ("Result", "serum_markers", "serum_marker_value", {}),
    ("Unit", "serum_markers", "serum_marker_unit", {}),
    ("ULN", "serum_markers", "serum_marker_uln", {}),
    ("Lab", "serum_markers", "serum_marker_lab", {}),
    ("Treatment", "treatment_history", "treatment_type", {}),
    ("Agents", "treatment_history", "therapeutic_agents", {}),
    ("Dose (Gy)", "treatment_history", "radiation_total_dose", {}),
    ("Operation", "treatment_history", "surgical_procedure", {}),
    ("Setting", "treatment_history", "treatment_line", {}),
    ("Line", "treatment_history", "line_of_therapy", {}),
    ("Intent", "treatment_history", "treatment_intent", {}),
    ("Started", "treatment_history", "treatment_start_date", {}),
    ("Ongoing", "treatment_history", "treatment_ongoing", {"values": YES_NO}),
    ("Stopped", "treatment_history", "treatment_stop_date", {}),
    ("Why stopped", "treatment_history", "treatment_stop_reason", {}),
    ("Outcome", "treatment_history", "treatment_outcome", {}),
    ("Vital status", "vital_status", "vital_status", {}),
    ("Last seen", "vital_status", "date_of_last_follow_up", {}),
    ("Died", "vital_status", "date_of_death", {}),
    ("Cause of death", "vital_status", "cause_of_death", {}),
    ("Progressed", "vital_status", "progression_or_recurrence", {}),
    ("Progression type", "vital_status", "new_event_type", {}),
    ("Progression date", "vital_status", "date_of_progression", {}),
]
HEADERS = ["Patient", "Visit", "Repeat form", "Instance", "Demographics complete"] + [c[0] for c in COLUMNS]
FORM_OF = {header: form for header, form, _, _ in COLUMNS}
# Values a correction may change: always shown (no branching hides them), never calculated.
CORRECTABLE = {
    "demographics": ["Height (cm)", "Weight (kg)", "MRN"],
    "diagnosis_stage": ["Histology", "Grade", "Diagnosed"],
    "social_history": ["Alcohol use"],
    "imaging_timepoint": ["Scan date", "Regions"],
    "response_assessment": ["RECIST date", "Lesion 1 (mm)", "Reader"],
    "serum_markers": ["Result", "Lab", "Marker date"],
    "treatment_history": ["Started", "Intent"],
    "vital_status": ["Last seen"],
}


def subjects_for(rows: int) -> int:
    """About eight rows a patient (three visits, serum markers and treatments)."""
    return max(1, rows // 8)


def subject_id(n: int) -> str:
    return f"P-{n:05d}"


def dmy(day: dt.date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def maybe_missing(rng: random.Random, value):
    """Optional cells: 3 % blank, 2 % a legacy missing marker."""
    x = rng.random()
    if x < 0.03:
        return None
    if x < 0.05:
        return rng.choice(list(MISSING))
    return value


def _patient(rng: random.Random) -> dict:
    diagnosed = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randint(0, 7 * 365))
    enrolled = diagnosed + dt.timedelta(days=rng.randint(10, 60))
    return {
        "diagnosed": diagnosed,
        "born": diagnosed - dt.timedelta(days=rng.randint(35 * 365, 85 * 365)),
        "enrolled": enrolled,
        "histology": rng.choice(HISTOLOGY),
        "lesions": [
            (f"{rng.choice(SITES)} {rng.randint(1, 8)}", round(rng.uniform(10, 80), 1))
            for _ in range(rng.randint(1, 3))
        ],
    }


def _demographics(rng: random.Random, p: dict) -> dict:
    height = round(rng.gauss(168, 9), 1)
    return {
        "MRN": f"MRN{rng.randint(10**6, 10**7 - 1)}",
        "DOB": p["born"],  # an Excel date cell
        "Enrolled": dmy(p["enrolled"]),  # a DD/MM/YYYY string
        "Sex": rng.choice(list(SEX)),
        "Race": rng.choices(list(RACE), weights=[50, 15, 12, 3, 8, 8, 4])[0],
        "Ethnicity": rng.choice(list(ETHNICITY)),
        "Height (cm)": height,
        "Weight (kg)": round(rng.gauss(74, 14), 1),
        "Demographics complete": "2",
    }


def _diagnosis(rng: random.Random, p: dict) -> dict:
    histology, morphology, site = p["histology"]
    return {
        "Histology": histology,
        "ICD-O-3": maybe_missing(rng, morphology),
        "Primary site": site,
        "Side": rng.choice(list(LATERALITY)),
        "Diagnosed": p["diagnosed"],
        "Grade": maybe_missing(rng, rng.choice(["G1", "G2", "G3", "GX", "high grade"])),
        "AJCC ed.": rng.choice(["7th", "8th"]),
        "cT": rng.choice(["T1", "T1a", "T1b", "T1c", "T2", "T2a"]),
        "cN": rng.choice(["N0", "N1", "N1a", "N1b"]),
        "cM": rng.choice(["M0", "M0", "M0", "M1", "MX"]),
        "Clinical stage": rng.choice(["Stage I", "Stage IA", "Stage IB", "Stage II"]),
    }


def _social(rng: random.Random, p: dict) -> dict:
    status = rng.choices(list(SMOKING), weights=[40, 15, 15, 15, 5, 5, 5])[0]
    row: dict = {"Smoking": status, "Alcohol": rng.choice(["Y", "N"])}
    code = SMOKING[status]
    if code in ("2", "3", "4", "5", "6"):
        per_day = rng.choice([5, 10, 15, 20, 20, 30, 40])
        years = rng.randint(2, 45)
        onset = p["born"].year + rng.randint(14, 25)
        row.update(
            {
                "Cig/day": per_day,
                "Years smoked": years,
                "Pack-years": round(per_day * years / 20, 1),
                "Started smoking": onset,
            }
        )
        if code in ("3", "4", "5"):
            row["Quit"] = min(onset + years, p["enrolled"].year)
    elif rng.random() < 0.5:
        row["Cig/day"] = 0  # filled in on a never-smoker's row: hidden by branching, dropped
    if row["Alcohol"] == "Y":
        row["Alcohol use"] = rng.choice(["occasional", "light", "moderate", "heavy"])
    return row


def _imaging(rng: random.Random, p: dict, visit: str, day: dt.date) -> dict:
    modality = rng.choices(list(MODALITY), weights=[50, 20, 20, 5, 5])[0]
    regions = rng.sample(list(REGIONS), rng.randint(1, 3))
    row: dict = {
        "Scan date": day.isoformat(),
        "Scan timepoint": EVENTS[visit],
        "Modality": modality,
        "Regions": "; ".join(regions),
        "Study UID": f"1.2.826.0.1.3680043.8.498.{rng.randint(10**11, 10**12)}.{rng.randint(1, 999)}",
        "Contrast": rng.choice(["Y", "N"]),
    }
    if modality.startswith("PET") or rng.random() < 0.1:  # a tracer on a CT row is hidden and dropped
        row["Tracer"] = rng.choice(list(TRACER))
    if row["Contrast"] == "Y":
        row["Contrast agent"] = maybe_missing(rng, rng.choice(["iohexol 350", "iopamidol 370", "gadobutrol"]))
    return row


def _response(rng: random.Random, p: dict, visit: str, day: dt.date) -> dict:
    follow_up = visit != "Baseline"
    row: dict = {
        "RECIST date": day,
        "RECIST timepoint": "follow_up" if follow_up else "baseline",
        "Reader": maybe_missing(rng, rng.choice(READERS)),
    }
    for n, (site, size) in enumerate(p["lesions"], start=1):
        row[f"Lesion {n} site"] = site
        row[f"Lesion {n} (mm)"] = round(max(0.0, size * rng.uniform(0.5, 1.3)), 1) if follow_up else size
    if follow_up:
        row["Non-target"] = rng.choice(["CR", "NON_CR_NON_PD", "PD", "NE"])
        row["New lesions"] = rng.choices(["Y", "N"], weights=[2, 8])[0]
        if row["New lesions"] == "Y":
            row["New lesion where"] = f"new {rng.choice(SITES)} lesion, {rng.randint(4, 30)} mm"
        row["Overall response"] = rng.choice(["CR", "PR", "SD", "PD", "NE"])
    return row


def _marker(rng: random.Random, day: dt.date) -> dict:
    label = rng.choices(list(MARKER), weights=[25, 25, 15, 15, 15, 5])[0]
    code = MARKER[label]
    row = {
        "Marker date": dmy(day),
        "Marker": label,
        "Result": round(rng.lognormvariate(3, 1.2), 2),
        "Unit": MARKER_UNIT[code],
        "ULN": maybe_missing(rng, rng.choice([35.0, 5.0, 4.0, 37.0, 31.3])),
        "Lab": maybe_missing(rng, rng.choice(LABS)),
    }
    if code == "other":
        row["Marker (other)"] = rng.choice(["HE4", "NSE", "CYFRA 21-1", "SCC-Ag"])
    return row


def _treatment(rng: random.Random, start: dt.date) -> dict:
    kind = rng.choice(TREATMENTS)
    line = rng.choice(["primary", "neoadjuvant", "adjuvant", "metastatic", "maintenance"])
    row: dict = {
        "Treatment": kind,
        "Setting": line,
        "Intent": rng.choice(["curative", "palliative", "unknown"]),
        "Started": start,
        "Ongoing": rng.choice(["Y", "N"]),
        "Outcome": rng.choice(["Complete Response", "Partial Response", "Treatment Ongoing", "Unknown"]),
    }
    if kind in ("Radiation Therapy", "Concurrent Chemoradiation"):
        row["Dose (Gy)"] = rng.choice([40.05, 45.0, 50.4, 60.0, 66.0, 70.0])
    if kind == "Surgery":
        row["Operation"] = rng.choice(["lumpectomy", "mastectomy", "lobectomy", "debulking", "nephrectomy"])
    elif kind != "Radiation Therapy" or rng.random() < 0.2:  # agents on a radiation row: dropped
        drugs = rng.sample(DRUGS, rng.randint(1, 2))
        row["Agents"] = " + ".join(
            f"{d} {rng.choice([50, 75, 100, 175, 200])} mg/m2 q{rng.choice([1, 2, 3])}w" for d in drugs
        )
    if line == "metastatic":
        row["Line"] = rng.randint(1, 5)
    if row["Ongoing"] == "N":
        row["Stopped"] = dmy(start + dt.timedelta(days=rng.randint(30, 200)))
        row["Why stopped"] = rng.choice(["completed", "progression", "toxicity", "patient_choice"])
    return row


def _vital(rng: random.Random, day: dt.date) -> dict:
    status = rng.choices(["alive", "dead", "lost to follow-up"], weights=[80, 15, 5])[0]
    row: dict = {"Vital status": status, "Last seen": day, "Progressed": rng.choice(["yes", "no", "unknown"])}
    if status == "dead":
        row["Died"] = day + dt.timedelta(days=rng.randint(1, 60))
        row["Cause of death"] = rng.choice(["Cancer Related", "Not Cancer Related", "Unknown"])
    if row["Progressed"] == "yes":
        row["Progression type"] = rng.choice(["Progression of Disease", "Recurrence", "Distant Metastasis"])
        row["Progression date"] = day - dt.timedelta(days=rng.randint(10, 90))
    return row


def _rows_of(rng: random.Random, n: int) -> list[dict]:
    """Every row of patient n: a row per visit, then its repeating forms."""
    p = _patient(rng)
    sid = subject_id(n)
    rows = []
    for visit, offset in (("Baseline", 0), ("On treatment", 60), ("Follow-up", 180)):
        day = p["enrolled"] + dt.timedelta(days=offset + rng.randint(-7, 7))
        row = {"Patient": sid, "Visit": visit}
        row |= _imaging(rng, p, visit, day) | _response(rng, p, visit, day)
        if visit == "Baseline":
            row |= _demographics(rng, p) | _diagnosis(rng, p) | _social(rng, p)
        if visit == "Follow-up":
            row |= _vital(rng, day)
        rows.append(row)
        repeats = []
        markers = {"Baseline": (1, 3), "On treatment": (0, 2), "Follow-up": (0, 0)}[visit]
        repeats += [("serum_markers", _marker(rng, day)) for _ in range(rng.randint(*markers))]
        if visit == "On treatment":
            repeats += [
                ("treatment_history", _treatment(rng, p["enrolled"] + dt.timedelta(days=rng.randint(0, 50))))
                for _ in range(rng.randint(1, 3))
            ]
        counts: dict[str, int] = {}
        for form, values in repeats:
            counts[form] = counts.get(form, 0) + 1
            rows.append(
                {"Patient": sid, "Visit": visit, "Repeat form": form, "Instance": counts[form], **values}
            )
    return rows


def _correct(rng: random.Random, row: dict) -> None:
    """Change one or two visible values of about 60 % of the row's records, as a correction would."""
    forms = {FORM_OF[h] for h, v in row.items() if h in FORM_OF and v is not None}
    for form in sorted(forms):
        if rng.random() >= 0.6:
            continue
        for header in rng.sample(CORRECTABLE[form], min(len(CORRECTABLE[form]), rng.randint(1, 2))):
            old = row.get(header)
            if isinstance(old, dt.date):
                row[header] = old + dt.timedelta(days=rng.choice([-2, -1, 1, 2]))
            elif isinstance(old, float):
                step = rng.choice([0.5, 1.5]) * (1 if old < 2 else rng.choice([-1, 1]))  # never below 0
                row[header] = round(old + step, 2 if form == "serum_markers" else 1)
            elif header == "Regions":
                row[header] = "; ".join(rng.sample(list(REGIONS), rng.randint(1, 3)))
                if row[header] == old:
                    row[header] = "Whole body" if old != "Whole body" else "Chest"
            elif header == "Intent":
                row[header] = {"curative": "palliative"}.get(old, "curative")
            elif header == "Alcohol use":
                row[header] = {"heavy": "moderate"}.get(old, "heavy")
            elif header in ("Scan date", "Marker date"):
                day = (
                    dt.date.fromisoformat(old)
                    if header == "Scan date"
                    else dt.date(*map(int, reversed(old.split("/"))))
                )
                day += dt.timedelta(days=1)
                row[header] = day.isoformat() if header == "Scan date" else dmy(day)
            elif old in (None, *MISSING):
                row[header] = rng.choice(
                    READERS if header == "Reader" else LABS if header == "Lab" else ["G2"]
                )
            else:
                row[header] = f"{old} (corrected)"


def generate(path: Path, rows: int, *, update: bool = False) -> dict:
    """Write the sheet of about `rows` rows; returns {"rows", "subjects", "columns"}."""
    from openpyxl import Workbook

    rng = random.Random(SEED)  # noqa: S311 - reproducible fake data, nothing secret
    fix = random.Random(SEED + 1)  # noqa: S311 - the corrections, apart so the rows stay the same
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    sheet.append(HEADERS)
    subjects = subjects_for(rows)
    written = 0
    for n in range(1, subjects + 1):
        for row in _rows_of(rng, n):
            if update:
                _correct(fix, row)
            sheet.append([row.get(h) for h in HEADERS])
            written += 1
    book.save(path)
    return {"rows": written, "subjects": subjects, "columns": len(HEADERS)}


def mapping_spec() -> dict:
    return {
        "subject_column": "Patient",
        "event_column": "Visit",
        "event_values": EVENTS,
        "repeat_form_column": "Repeat form",
        "instance_column": "Instance",
        "status_columns": {"demographics": "Demographics complete"},
        "date_format": "DMY",
        "missing_values": MISSING,
        "columns": [{"column": h, "form": f, "item": i, **extra} for h, f, i, extra in COLUMNS],
    }


def prepare(subjects: int, slug: str) -> None:
    """Load crf_definitions/, make study `slug` on its schedule and the patients (bulk_create, set-up
    only); the user bench_dm, who must exist, gets the data manager role."""
    from django.contrib.auth import get_user_model

    from capture.accounts.system import SYSTEM
    from capture.definitions.loader import load_definitions
    from capture.definitions.models import Schedule
    from capture.studies import services
    from capture.studies.models import Subject

    root = Path(__file__).resolve().parent.parent
    load_definitions([root / "crf_definitions"], actor=SYSTEM)
    schedule = Schedule.objects.get(name="qin_coclinical")
    study = services.create_study(actor=SYSTEM, slug=slug, name="Realistic", schedule=schedule)
    site = services.add_site(actor=SYSTEM, study=study, code="R", name="Realistic site")
    user = get_user_model().objects.get(username="bench_dm")
    services.grant_role(actor=SYSTEM, study=study, user=user, role="data_manager")
    arm = schedule.arms.get(name="patients")
    Subject.objects.bulk_create(
        [
            Subject(
                study=study,
                site=site,
                arm=arm,
                subject_id=subject_id(n),
                seq=n,
                kind="patient",
                enrollment_date=dt.date(2020, 1, 1),
                date_shift_days=-100,
            )
            for n in range(1, subjects + 1)
        ],
        batch_size=5000,
    )
