"""Virus-scan hooks for the tests (CAPTURE["FILE_SCANNER"] names one by its dotted path)."""

from capture.files.services import FileRejectedError

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def reject_eicar(file, name: str):
    """Refuse the EICAR test signature, as a real scanner would."""
    if EICAR in file.read():
        raise FileRejectedError("Eicar-Test-Signature found")
    return None


def reason_for_everything(file, name: str) -> str:
    return "scanner says no"
