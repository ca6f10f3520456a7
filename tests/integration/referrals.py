"""Realistic referral resources for the black-box tests (French GP practice,
INS-NIR and RPPS identifiers, ICD-10 and SNOMED CT indications)."""

import copy
import uuid

INS_NIR = "urn:oid:1.2.250.1.213.1.4.8"
RPPS = "urn:oid:1.2.250.1.71.4.2.1"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
SNOMED = "http://snomed.info/sct"
PLACER = "urn:oid:1.2.250.1.999.1.1"  # the GP software's referral numbers

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"use": "official", "system": INS_NIR, "value": "283052724101267"}],
    "name": [{"use": "official", "family": "Dupré", "given": ["Hélène", "Zoë"]}],
    "gender": "female",
    "birthDate": "1983-05-27",
    "address": [{"line": ["12 rue Montorgueil"], "city": "Paris", "postalCode": "75002",
                 "country": "FR"}],
}

PRACTITIONER = {
    "resourceType": "Practitioner",
    "identifier": [{"system": RPPS, "value": "10003456789"}],
    "name": [{"family": "Martin", "given": ["Claire"], "prefix": ["Dr"]}],
}


def service_request(subject="Patient/example", requester="Practitioner/example",
                    icd10="M54.4", identifier=None, note=True):
    """A ServiceRequest of about 2 KB: lumbosciatica, left L5-S1."""
    sr = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": PLACER, "value": identifier or str(uuid.uuid4())}],
        "status": "active",
        "intent": "order",
        "category": [{"coding": [{"system": SNOMED, "code": "363679005",
                                  "display": "Imaging"}]}],
        "priority": "routine",
        "subject": {"reference": subject},
        "authoredOn": "2026-11-20T09:30:00+01:00",
        "requester": {"reference": requester},
        "reasonCode": [{"coding": [{"system": ICD10, "code": icd10,
                                    "display": "Lumbago with sciatica"}],
                        "text": "Lombosciatique gauche L5-S1 depuis 10 semaines"}],
        "bodySite": [{"coding": [{"system": SNOMED, "code": "122496007",
                                  "display": "Lumbar spine structure"},
                                 {"system": SNOMED, "code": "7771000", "display": "Left"}]}],
        "patientInstruction": "Venir accompagné, apporter les imageries antérieures (IRM).",
    }
    if note:
        sr["note"] = [{"text": "Lombosciatique gauche L5-S1 résistante au traitement médical "
                               "bien conduit depuis plus de six semaines (AINS, antalgiques de "
                               "palier 2, kinésithérapie). IRM du 02/11/2026 : hernie discale "
                               "postéro-latérale gauche L5-S1 au contact de la racine S1. Pas de "
                               "déficit moteur. Pas de troubles sphinctériens. Merci de réaliser "
                               "une infiltration sous contrôle scopique ou scanographique selon "
                               "votre appréciation. Patiente sous metformine (diabète de type 2 "
                               "équilibré). Pas d'anticoagulant. Allergie : aucune connue."}]
    return sr


def contained_referral(**kwargs):
    """A ServiceRequest carrying its Patient and Practitioner as contained resources."""
    sr = service_request(subject="#pat", requester="#gp", **kwargs)
    patient = copy.deepcopy(PATIENT)
    patient["id"] = "pat"
    gp = copy.deepcopy(PRACTITIONER)
    gp["id"] = "gp"
    sr["contained"] = [patient, gp]
    return sr


def transaction_bundle(ins="283052724101267", icd10="M54.4", with_condition=True,
                       placer=None, performer=None):
    """A transaction Bundle as GP software sends it: Patient (conditional on
    its INS-NIR), Practitioner (conditional on RPPS), Condition and the
    ServiceRequest, linked by urn:uuid fullUrls."""
    pat, gp, cond, sr_id = (("urn:uuid:" + str(uuid.uuid4())) for _ in range(4))
    patient = copy.deepcopy(PATIENT)
    patient["identifier"][0]["value"] = ins
    sr = service_request(subject=pat, requester=gp, icd10=icd10, identifier=placer)
    entries = [
        {"fullUrl": pat, "resource": patient,
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": "identifier=%s|%s" % (INS_NIR, ins)}},
        {"fullUrl": gp, "resource": copy.deepcopy(PRACTITIONER),
         "request": {"method": "POST", "url": "Practitioner",
                     "ifNoneExist": "identifier=%s|%s" % (RPPS, PRACTITIONER["identifier"][0]["value"])}},
    ]
    if with_condition:
        entries.append({"fullUrl": cond, "resource": {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active"}]},
            "code": {"coding": [{"system": ICD10, "code": icd10}]},
            "subject": {"reference": pat},
            "onsetDateTime": "2026-09-01"},
            "request": {"method": "POST", "url": "Condition"}})
        sr["reasonReference"] = [{"reference": cond}]
    if performer:
        sr["performer"] = [{"identifier": performer}]
    entries.append({"fullUrl": sr_id, "resource": sr,
                    "request": {"method": "POST", "url": "ServiceRequest"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
